//! CRC-64 as Redis computes it (`src/crc64.c`): the "Jones" polynomial 0xad93d23594c935a9,
//! reflected in and out, init 0, xorout 0. This is the `crc` crate's `CRC_64_REDIS`; the unit
//! tests check Redis's own test vectors.

use crc::{Crc, Digest, Table, CRC_64_REDIS};

/// The algorithm, slice-by-16 table.
pub static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// A running checksum.
pub type Crc64Digest = Digest<'static, u64, Table<16>>;

/// CRC-64 of `data` from 0.
pub fn crc64(data: &[u8]) -> u64 {
    CRC64.checksum(data)
}

/// A new running checksum starting at 0.
pub fn digest() -> Crc64Digest {
    CRC64.digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_test_vectors() {
        // Both vectors are printed by Redis's crc64Test (`src/crc64.c`).
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
        let li = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in \
reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.\0";
        assert_eq!(crc64(li), 0xc7794709e69683b3);
    }

    #[test]
    fn running_digest_equals_one_shot() {
        let mut d = digest();
        d.update(b"1234");
        d.update(b"56789");
        assert_eq!(d.finalize(), 0xe9c6d914c4b8d9ca);
    }
}
