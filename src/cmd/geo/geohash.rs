//! Geohash arithmetic as Redis 7.0 does it (geohash.c, geohash_helper.c): 26-bit-per-axis
//! interleaved cells over the Web-Mercator latitude band, the 52-bit sorted-set score, the
//! 3×3 block of cells a radius or box search visits, and haversine distances.
//!
//! Every formula keeps Redis's evaluation order (IEEE doubles, no fused multiply-add), so a
//! score, a decoded position or a distance is bit-identical to what redis-server computes, and
//! C's conversions of out-of-range doubles to integers are emulated as x86-64 performs them.
//! Nothing here panics on any input (NaN and infinities included).

// Comparisons are written as C writes them: with a NaN operand every one is false, which
// `contains` and `clamp` would turn the other way.
#![allow(clippy::manual_range_contains, clippy::manual_clamp)]

/// Longitude limits.
pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
/// Latitude limits (EPSG:900913 / Web Mercator: the poles cannot be indexed).
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per axis of a stored position.
pub const STEP_MAX: u8 = 26;

/// Earth's quadratic mean radius for WGS-84, in meters.
const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the equator in Mercator meters.
const MERCATOR_MAX: f64 = 20037726.37;
/// Degrees to radians (C's `M_PI / 180.0`).
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}
fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A closed interval of one coordinate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Span {
    pub min: f64,
    pub max: f64,
}

/// The longitude range of stored positions.
pub const WGS84_LON: Span = Span {
    min: LON_MIN,
    max: LON_MAX,
};
/// The latitude range of stored positions.
pub const WGS84_LAT: Span = Span {
    min: LAT_MIN,
    max: LAT_MAX,
};
/// The latitude range of the standard geohash alphabet (GEOHASH's strings).
pub const STD_LAT: Span = Span {
    min: -90.0,
    max: 90.0,
};

/// A cell: `step` bits per axis, interleaved (latitude in the even bits, longitude in the odd).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub bits: u64,
    pub step: u8,
}

impl Cell {
    /// The "no cell" marker of a neighbour excluded from a search.
    pub const ZERO: Cell = Cell { bits: 0, step: 0 };

    pub fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The cell left-aligned to 52 bits: the smallest score inside it.
    pub fn align52(&self) -> u64 {
        let shift = 52u32.saturating_sub(u32::from(self.step) * 2);
        self.bits.checked_shl(shift).unwrap_or(0)
    }

    /// Scores of the members inside this cell: `[min, max)`.
    pub fn score_range(&self) -> (f64, f64) {
        let min = self.align52();
        let next = Cell {
            bits: self.bits.wrapping_add(1),
            step: self.step,
        };
        (min as f64, next.align52() as f64)
    }
}

/// A cell's rectangle in degrees.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Area {
    pub lon: Span,
    pub lat: Span,
}

/// C's `(uint64_t)d` as gcc compiles it for x86-64 (defined for every input, NaN included).
pub fn c_f64_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9223372036854775808.0;
    if d >= TWO63 {
        (cvtt_i64(d - TWO63) as u64) ^ (1u64 << 63)
    } else {
        cvtt_i64(d) as u64
    }
}

/// x86-64's `cvttsd2si` (64-bit): truncation, or `i64::MIN` for NaN and out-of-range values.
pub fn cvtt_i64(d: f64) -> i64 {
    if d.is_nan() || d >= 9223372036854775808.0 || d < -9223372036854775808.0 {
        i64::MIN
    } else {
        d as i64
    }
}

/// C's `(uint32_t)d` as gcc compiles it for x86-64: a 64-bit truncation, low 32 bits kept.
fn c_f64_to_u32(d: f64) -> u32 {
    cvtt_i64(d) as u32
}

/// Spread the 32 bits of `v` to the even bit positions of a u64.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gather the even bit positions of `v` into a u32 (the inverse of [`spread`]).
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude index in the even bits, longitude index in the odd bits.
pub fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// `(latitude index, longitude index)` of interleaved bits.
pub fn deinterleave(bits: u64) -> (u32, u32) {
    (squash(bits), squash(bits >> 1))
}

/// The cell of `step` bits per axis holding (lon, lat) within the given ranges; None outside
/// the WGS-84 limits or the ranges, or for a step outside 1..=32.
pub fn encode(lon_span: Span, lat_span: Span, lon: f64, lat: f64, step: u8) -> Option<Cell> {
    if step == 0 || step > 32 {
        return None;
    }
    if lon > LON_MAX || lon < LON_MIN || lat > LAT_MAX || lat < LAT_MIN {
        return None;
    }
    if lat < lat_span.min || lat > lat_span.max || lon < lon_span.min || lon > lon_span.max {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_off = (lat - lat_span.min) / (lat_span.max - lat_span.min) * cells;
    let lon_off = (lon - lon_span.min) / (lon_span.max - lon_span.min) * cells;
    Some(Cell {
        bits: interleave(c_f64_to_u32(lat_off), c_f64_to_u32(lon_off)),
        step,
    })
}

/// A position's cell at full precision (what GEOADD stores).
pub fn encode_wgs84(lon: f64, lat: f64) -> Option<Cell> {
    encode(WGS84_LON, WGS84_LAT, lon, lat, STEP_MAX)
}

/// The rectangle of a cell; None for the zero cell.
pub fn decode(lon_span: Span, lat_span: Span, cell: Cell) -> Option<Area> {
    if cell.is_zero() || cell.step > 63 {
        return None;
    }
    let (ilat, ilon) = deinterleave(cell.bits);
    let div = (1u64 << cell.step) as f64;
    let lat_scale = lat_span.max - lat_span.min;
    let lon_scale = lon_span.max - lon_span.min;
    Some(Area {
        lat: Span {
            min: lat_span.min + (f64::from(ilat) / div) * lat_scale,
            max: lat_span.min + (f64::from(ilat.wrapping_add(1)) / div) * lat_scale,
        },
        lon: Span {
            min: lon_span.min + (f64::from(ilon) / div) * lon_scale,
            max: lon_span.min + (f64::from(ilon.wrapping_add(1)) / div) * lon_scale,
        },
    })
}

/// The centre of a WGS-84 cell, clamped to the limits: `(lon, lat)`.
pub fn decode_to_lonlat(cell: Cell) -> Option<(f64, f64)> {
    let a = decode(WGS84_LON, WGS84_LAT, cell)?;
    let mut x = (a.lon.min + a.lon.max) / 2.0;
    if x > LON_MAX {
        x = LON_MAX;
    }
    if x < LON_MIN {
        x = LON_MIN;
    }
    let mut y = (a.lat.min + a.lat.max) / 2.0;
    if y > LAT_MAX {
        y = LAT_MAX;
    }
    if y < LAT_MIN {
        y = LAT_MIN;
    }
    Some((x, y))
}

/// The position a sorted-set score stands for (`(lon, lat)`), as Redis decodes any score.
pub fn score_to_lonlat(score: f64) -> (f64, f64) {
    let cell = Cell {
        bits: c_f64_to_u64(score),
        step: STEP_MAX,
    };
    decode_to_lonlat(cell).unwrap_or((0.0, 0.0))
}

/// The score GEOADD stores for a valid position.
pub fn lonlat_to_score(lon: f64, lat: f64) -> Option<u64> {
    encode_wgs84(lon, lat).map(|c| c.align52())
}

/// The 11-character standard geohash of a score (GEOHASH): decoded, re-encoded over ±90°.
pub fn score_to_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = score_to_lonlat(score);
    let bits = encode(WGS84_LON, STD_LAT, lon, lat, 26).map_or(0, |c| c.bits);
    let mut out = [b'0'; 11];
    for (i, o) in out.iter_mut().enumerate().take(10) {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *o = ALPHABET[idx as usize];
    }
    out
}

fn step_mask(step: u8, pattern: u64) -> u64 {
    pattern
        .checked_shr(64u32.saturating_sub(u32::from(step) * 2))
        .unwrap_or(0)
}

/// Move a cell one column east (`d > 0`) or west (`d < 0`), wrapping around.
fn move_x(c: &mut Cell, d: i8) {
    step_along(c, d, 0xaaaa_aaaa_aaaa_aaaa);
}

/// Move a cell one row north (`d > 0`) or south (`d < 0`), wrapping around.
fn move_y(c: &mut Cell, d: i8) {
    step_along(c, d, 0x5555_5555_5555_5555);
}

/// Add ±1 to the coordinate whose bits are `own` in the interleaved hash (the other one's
/// bits are set to 1 first, so the carry crosses them), keeping the other coordinate.
fn step_along(c: &mut Cell, d: i8, own: u64) {
    if d == 0 {
        return;
    }
    let other = !own;
    let mut v = c.bits & own;
    let kept = c.bits & other;
    let zz = step_mask(c.step, other);
    if d > 0 {
        v = v.wrapping_add(zz.wrapping_add(1));
    } else {
        v |= zz;
        v = v.wrapping_sub(zz.wrapping_add(1));
    }
    v &= step_mask(c.step, own);
    c.bits = v | kept;
}

/// The eight neighbours of a cell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Neighbors {
    pub north: Cell,
    pub south: Cell,
    pub east: Cell,
    pub west: Cell,
    pub north_east: Cell,
    pub north_west: Cell,
    pub south_east: Cell,
    pub south_west: Cell,
}

pub fn neighbors(c: Cell) -> Neighbors {
    let at = |dx: i8, dy: i8| {
        let mut n = c;
        move_x(&mut n, dx);
        move_y(&mut n, dy);
        n
    };
    Neighbors {
        east: at(1, 0),
        west: at(-1, 0),
        south: at(0, -1),
        north: at(0, 1),
        north_west: at(-1, 1),
        north_east: at(1, 1),
        south_east: at(1, -1),
        south_west: at(-1, -1),
    }
}

/// Distance in meters along a meridian (the haversine of two points of one longitude).
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance in meters (haversine), as Redis 7.0.15 computes it: points of one
/// longitude (to the last bit of the half-difference's sine) take the meridian shortcut.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The step of the search cells for a radius (in meters) at a latitude.
pub fn estimate_steps(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    // A positive radius reaches the limit within ~1100 doublings; the bound only keeps a
    // negative one (never passed by the commands) from looping forever.
    while range < MERCATOR_MAX && step < 4096 {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if lat > 66.0 || lat < -66.0 {
        step -= 1;
        if lat > 80.0 || lat < -80.0 {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// What a search covers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShapeKind {
    /// Radius, in the unit.
    Circle(f64),
    /// Width and height, in the unit.
    Box(f64, f64),
}

/// A search area: centre, kind and the unit's size in meters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub kind: ShapeKind,
    pub conversion: f64,
}

impl Shape {
    /// `[min_lon, min_lat, max_lon, max_lat]` of the area.
    pub fn bounding_box(&self) -> [f64; 4] {
        let (h, w) = match self.kind {
            ShapeKind::Circle(r) => (r, r),
            ShapeKind::Box(w, h) => (h / 2.0, w / 2.0),
        };
        let height = self.conversion * h;
        let width = self.conversion * w;
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let lon_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let lon_delta_bottom =
            rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let southern = self.lat < 0.0;
        let lon_delta = if southern {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            self.lon - lon_delta,
            self.lat - lat_delta,
            self.lon + lon_delta,
            self.lat + lat_delta,
        ]
    }

    /// The distance in meters from the centre to (lon, lat) if that point is inside the area.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.kind {
            ShapeKind::Circle(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                if d > r * self.conversion {
                    None
                } else {
                    Some(d)
                }
            }
            ShapeKind::Box(w, h) => {
                let width_m = w * self.conversion;
                let height_m = h * self.conversion;
                if lat_distance(lat, self.lat) > height_m / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width_m / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }

    /// The cells to visit, in Redis's order: the centre cell, then north, south, east, west,
    /// north-east, north-west, south-east, south-west (excluded ones are [`Cell::ZERO`]).
    pub fn search_cells(&self) -> [Cell; 9] {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounding_box();
        let radius_m = match self.kind {
            ShapeKind::Circle(r) => r,
            ShapeKind::Box(w, h) => ((w / 2.0) * (w / 2.0) + (h / 2.0) * (h / 2.0)).sqrt(),
        } * self.conversion;
        let mut steps = estimate_steps(radius_m, self.lat);
        let locate = |steps: u8| {
            let hash = encode(WGS84_LON, WGS84_LAT, self.lon, self.lat, steps).unwrap_or(Cell {
                bits: 0,
                step: steps,
            });
            let n = neighbors(hash);
            let area = decode(WGS84_LON, WGS84_LAT, hash).unwrap_or_default();
            (hash, n, area)
        };
        let (mut hash, mut n, mut area) = locate(steps);
        let dec = |c: Cell| decode(WGS84_LON, WGS84_LAT, c).unwrap_or_default();
        let decrease = dec(n.north).lat.max < max_lat
            || dec(n.south).lat.min > min_lat
            || dec(n.east).lon.max < max_lon
            || dec(n.west).lon.min > min_lon;
        if steps > 1 && decrease {
            steps -= 1;
            (hash, n, area) = locate(steps);
        }
        if steps >= 2 {
            if area.lat.min < min_lat {
                n.south = Cell::ZERO;
                n.south_west = Cell::ZERO;
                n.south_east = Cell::ZERO;
            }
            if area.lat.max > max_lat {
                n.north = Cell::ZERO;
                n.north_east = Cell::ZERO;
                n.north_west = Cell::ZERO;
            }
            if area.lon.min < min_lon {
                n.west = Cell::ZERO;
                n.south_west = Cell::ZERO;
                n.north_west = Cell::ZERO;
            }
            if area.lon.max > max_lon {
                n.east = Cell::ZERO;
                n.south_east = Cell::ZERO;
                n.north_east = Cell::ZERO;
            }
        }
        [
            hash,
            n.north,
            n.south,
            n.east,
            n.west,
            n.north_east,
            n.north_west,
            n.south_east,
            n.south_west,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn known_scores_and_positions() {
        // Values printed by redis-server 7.0.
        assert_eq!(
            lonlat_to_score(13.361389, 38.115556),
            Some(3479099956230698)
        );
        assert_eq!(
            lonlat_to_score(15.087269, 37.502669),
            Some(3479447370796909)
        );
        assert_eq!(lonlat_to_score(180.0, 85.05112878), Some(13510798882111488));
        let (x, y) = score_to_lonlat(3479099956230698.0);
        assert_eq!(format!("{x:.17}"), "13.36138933897018433");
        assert_eq!(format!("{y:.17}"), "38.11555639549629859");
        assert_eq!(&score_to_geohash(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&score_to_geohash(13510798882111488.0), b"bp05b5048p0");
        assert_eq!(&score_to_geohash(-1.0), b"bp05b5048p0");
        assert_eq!(&score_to_geohash(f64::INFINITY), b"00bh0hbj200");
        let d = distance(
            13.361_389_338_970_184,
            38.115_556_395_496_3,
            15.087269,
            37.502669,
        );
        assert!((d - 166274.15).abs() < 1.0);
    }

    #[test]
    fn c_conversions() {
        assert_eq!(c_f64_to_u64(-1.0), u64::MAX);
        assert_eq!(c_f64_to_u64(f64::INFINITY), 0);
        assert_eq!(c_f64_to_u64(1e300), 0);
        assert_eq!(c_f64_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(c_f64_to_u64(f64::NAN), 1 << 63);
        assert_eq!(c_f64_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(cvtt_i64(-2.5), -2);
        assert_eq!(cvtt_i64(f64::NAN), i64::MIN);
    }

    #[test]
    fn interleave_round_trip() {
        for &(a, b) in &[
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (u32::MAX, 7),
            (0x1234_5678, 0x9abc_def0),
        ] {
            assert_eq!(deinterleave(interleave(a, b)), (a, b));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
    }

    #[test]
    fn neighbours_wrap() {
        let c = Cell { bits: 0, step: 1 };
        let n = neighbors(c);
        assert_eq!(n.east, n.west);
        assert_eq!(n.north, n.south);
        for step in 1..=26u8 {
            let c = encode(WGS84_LON, WGS84_LAT, 10.0, 20.0, step).expect("cell");
            let n = neighbors(c);
            let a = decode(WGS84_LON, WGS84_LAT, c).expect("area");
            let e = decode(WGS84_LON, WGS84_LAT, n.east).expect("area");
            if step > 1 {
                assert_eq!(a.lon.max, e.lon.min);
                assert_eq!(a.lat, e.lat);
            }
        }
    }

    #[test]
    fn search_cells_never_panic_on_extremes() {
        for &lat in &[LAT_MIN, LAT_MAX, 0.0, -70.0, 81.0] {
            for &lon in &[LON_MIN, LON_MAX, 0.0] {
                for &r in &[0.0, 1e-300, 1.0, 1e6, 1e30, f64::INFINITY, f64::MAX] {
                    for kind in [ShapeKind::Circle(r), ShapeKind::Box(r, r / 3.0)] {
                        let s = Shape {
                            lon,
                            lat,
                            kind,
                            conversion: 1609.34,
                        };
                        let cells = s.search_cells();
                        assert!(cells[0].step >= 1 && cells[0].step <= 26);
                        let _ = s.contains(lon, lat);
                    }
                }
            }
        }
    }

    fn exercise(a: f64, b: f64, c: f64, d: f64, step: u8) {
        let _ = encode(WGS84_LON, WGS84_LAT, a, b, step);
        let _ = decode(
            WGS84_LON,
            WGS84_LAT,
            Cell {
                bits: a.to_bits(),
                step,
            },
        );
        let _ = score_to_lonlat(a);
        let _ = score_to_geohash(b);
        let _ = distance(a, b, c, d);
        let _ = estimate_steps(c, d);
        let _ = c_f64_to_u64(a);
        let mut cell = Cell {
            bits: b.to_bits(),
            step,
        };
        move_x(&mut cell, 1);
        move_y(&mut cell, -1);
        let _ = neighbors(cell);
        let _ = cell.score_range();
        for kind in [ShapeKind::Circle(c.abs()), ShapeKind::Box(c.abs(), d.abs())] {
            let s = Shape {
                lon: a.clamp(LON_MIN, LON_MAX),
                lat: b.clamp(LAT_MIN, LAT_MAX),
                kind,
                conversion: 1.0,
            };
            let _ = s.search_cells();
            let _ = s.contains(c, d);
            let s = Shape {
                lon: a,
                lat: b,
                kind,
                conversion: d,
            };
            let _ = s.search_cells();
            let _ = s.bounding_box();
        }
    }

    quickcheck! {
        fn encode_decode_round_trip(lon: f64, lat: f64) -> TestResult {
            if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
                return TestResult::discard();
            }
            let Some(cell) = encode_wgs84(lon, lat) else {
                return TestResult::failed();
            };
            let area = decode(WGS84_LON, WGS84_LAT, cell).expect("area");
            // The position lies in its cell (the upper limits fall in the last cell's edge).
            let in_lon = area.lon.min <= lon && (lon <= area.lon.max || lon == LON_MAX);
            let in_lat = area.lat.min <= lat && (lat <= area.lat.max || lat == LAT_MAX);
            let score = cell.align52();
            let (x, y) = score_to_lonlat(score as f64);
            let close = (x - lon).abs() <= 360.0 / f64::from(1u32 << 26)
                && (y - lat).abs() <= 171.0 / f64::from(1u32 << 26);
            TestResult::from_bool(in_lon && in_lat && close && score < (1u64 << 54))
        }

        fn scaled_round_trip(a: u32, b: u32) -> bool {
            // Positions spread over the whole range (arbitrary f64s are mostly tiny or huge).
            let lon = LON_MIN + (f64::from(a) / f64::from(u32::MAX)) * 360.0;
            let lat = LAT_MIN + (f64::from(b) / f64::from(u32::MAX)) * (LAT_MAX - LAT_MIN);
            let Some(score) = lonlat_to_score(lon, lat) else { return false };
            let (x, y) = score_to_lonlat(score as f64);
            // Scores past 2^53 (longitude 180 exactly) lose their last bits as doubles, in
            // Redis too: compare what the sorted set holds.
            let again = lonlat_to_score(x, y).map(|s| s as f64);
            (x - lon).abs() < 1e-5 && (y - lat).abs() < 1e-5 && again == Some(score as f64)
        }

        fn never_panics(a: f64, b: f64, c: f64, d: f64, step: u8) -> bool {
            exercise(a, b, c, d, step);
            true
        }

        fn special_values_never_panic(i: u8, j: u8) -> bool {
            let vals = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, f64::MAX, f64::MIN,
                        f64::MIN_POSITIVE, 1e-320, LON_MAX, LAT_MIN];
            let a = vals[i as usize % vals.len()];
            let b = vals[j as usize % vals.len()];
            exercise(a, b, b, a, i);
            exercise(a, b, a, b, j);
            true
        }
    }
}
