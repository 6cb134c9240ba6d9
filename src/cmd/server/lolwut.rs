//! LOLWUT: computer art and the version, as Redis 7.0 draws it.
//!
//! `LOLWUT [VERSION v] [args…]` picks the drawing by the version asked for (this server's own,
//! 7.0.15, by default): 5 draws Georg Nees's *Schotter* (1968) in Braille characters, 6 a city
//! skyline in the terminal's four grays, and any other version only names ours. Rows of
//! squares below the second, and the skyline, are random; everything else — canvas sizes,
//! the rounding of the squares' corners (computed in `f32` where Redis uses `float`), the
//! Braille packing, the limits on the arguments and the texts — is Redis's, so a Schotter of
//! one or two rows is byte-identical to redis-server's.

use bytes::Bytes;
use rand::Rng;

use crate::cmd::err;
use crate::ctx::Ctx;
use crate::resp::{parse_i64, Reply};

/// A grid of pixels, each a color index; drawing outside it is ignored, reading outside it
/// gives 0.
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, background: u8) -> Canvas {
        let (w, h) = (width.max(0) as usize, height.max(0) as usize);
        Canvas {
            width,
            height,
            pixels: vec![background; w * h],
        }
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        (x >= 0 && x < self.width && y >= 0 && y < self.height)
            .then(|| x as usize + y as usize * self.width as usize)
    }

    fn set(&mut self, x: i32, y: i32, color: u8) {
        if let Some(i) = self.index(x, y) {
            self.pixels[i] = color;
        }
    }

    fn get(&self, x: i32, y: i32) -> u8 {
        self.index(x, y).map_or(0, |i| self.pixels[i])
    }

    /// Bresenham's line from (x1, y1) to (x2, y2), both ends included.
    fn line(&mut self, (mut x1, mut y1): (i32, i32), (x2, y2): (i32, i32), color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let sx = if x1 < x2 { 1 } else { -1 };
        let sy = if y1 < y2 { 1 } else { -1 };
        let mut e = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                return;
            }
            let e2 = e * 2;
            if e2 > -dy {
                e -= dy;
                x1 += sx;
            }
            if e2 < dx {
                e += dx;
                y1 += sy;
            }
        }
    }

    /// The outline of a square of side `side` centred on (x, y), turned by `angle` radians:
    /// its corners are points of the circle around it, a quarter turn apart.
    fn square(&mut self, x: i32, y: i32, side: f32, angle: f32, color: u8) {
        // The radius for that side, rounded to whole pixels (Redis's float arithmetic, and
        // its approximation of √2).
        #[allow(clippy::approx_constant)] // Redis's literal, not √2: kept for identical pixels
        const REDIS_SQRT_2: f64 = 1.4142135623;
        let radius = ((side as f64 / REDIS_SQRT_2) as f32 as f64).round();
        let mut k = (std::f64::consts::FRAC_PI_4 + angle as f64) as f32;
        let mut corners = [(0i32, 0i32); 4];
        for c in &mut corners {
            let kf = k as f64;
            *c = (
                (kf.sin() * radius + x as f64).round() as i32,
                (kf.cos() * radius + y as f64).round() as i32,
            );
            k = (kf + std::f64::consts::FRAC_PI_2) as f32;
        }
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4], color);
        }
    }
}

/// C's `rand()`: 0 ..= RAND_MAX (2^31 − 1).
fn c_rand(rng: &mut impl Rng) -> i32 {
    rng.gen_range(0..=i32::MAX)
}

/// Schotter: rows of squares, more and more turned and shifted towards the bottom.
fn schotter(cols: i32, per_row: i32, per_col: i32, rng: &mut impl Rng) -> Canvas {
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(width, height, 0);
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle = 0f32;
            if y > 1 {
                let mut r = [0f32; 3];
                for v in &mut r {
                    *v = c_rand(rng) as f32 / i32::MAX as f32 / per_col as f32 * y as f32;
                }
                for v in &mut r {
                    if c_rand(rng) % 2 == 1 {
                        *v = -*v;
                    }
                }
                angle = r[0];
                sx = (sx as f32 + r[1] * side / 3.0) as i32;
                sy = (sy as f32 + r[2] * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    canvas
}

/// (column, row, bit) of the pixels of a 2×4 block in the Braille character's bits.
const BRAILLE_DOTS: [(i32, i32, u32); 8] = [
    (0, 0, 0),
    (0, 1, 1),
    (0, 2, 2),
    (1, 0, 3),
    (1, 1, 4),
    (1, 2, 5),
    (0, 3, 6),
    (1, 3, 7),
];

/// Each 2×4 block of pixels as one Braille character (dots 1–8 are the bits 0–7 below, read
/// down the left column, down the right, then the bottom row), a newline after each row of
/// blocks but a last one starting on the canvas's last pixel row.
fn render_braille(canvas: &Canvas) -> Vec<u8> {
    let mut out = Vec::new();
    let mut y = 0;
    while y < canvas.height {
        let mut x = 0;
        while x < canvas.width {
            let bits = BRAILLE_DOTS
                .iter()
                .filter(|&&(dx, dy, _)| canvas.get(x + dx, y + dy) != 0)
                .fold(0u32, |b, &(_, _, bit)| b | 1 << bit);
            let c = char::from_u32(0x2800 + bits).unwrap_or('\u{2800}');
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            x += 2;
        }
        if y != canvas.height - 1 {
            out.push(b'\n');
        }
        y += 4;
    }
    out
}

/// One building: `color` with, when `windows`, windows in the two other grays.
struct Skyscraper {
    xoff: i32,
    width: i32,
    height: i32,
    windows: bool,
    color: u8,
}

fn draw_skyscraper(canvas: &mut Canvas, s: &Skyscraper, rng: &mut impl Rng) {
    let bottom = canvas.height - 1;
    let top = bottom - s.height + 1;
    let mut y = bottom;
    while y >= top {
        for x in s.xoff..s.xoff + s.width {
            // The roof is four pixels narrower.
            if y == top && (x <= s.xoff + 1 || x >= s.xoff + s.width - 2) {
                continue;
            }
            let mut color = s.color;
            let inner = x > s.xoff + 1 && x < s.xoff + s.width - 2 && y > top + 1 && y < bottom - 1;
            if s.windows && inner {
                let relx = x - (s.xoff + 1);
                let rely = y - (top + 1);
                // Windows two pixels wide and one tall (terminal cells are not square).
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    loop {
                        color = 1 + (c_rand(rng) % 2) as u8;
                        if color != s.color {
                            break;
                        }
                    }
                    if relx % 2 != 0 {
                        color = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, color);
        }
        y -= 1;
    }
}

/// Two rows of windowless buildings in the lighter grays behind, black ones with windows in
/// front, as in the parallax backgrounds of 8-bit games.
fn skyline(canvas: &mut Canvas, rng: &mut impl Rng) {
    let (w, h) = (canvas.width, canvas.height);
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < w {
            offset += c_rand(rng) % 8;
            let width = 10 + c_rand(rng) % 9;
            let height = if color == 2 {
                h / 2 + (c_rand(rng) % h) / 2
            } else {
                h / 2 + (c_rand(rng) % h) / 3
            };
            let s = Skyscraper {
                xoff: offset,
                width,
                height,
                windows: false,
                color,
            };
            draw_skyscraper(canvas, &s, rng);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    let mut offset = -10;
    while offset < w {
        offset += c_rand(rng) % 8;
        let mut width = 5 + c_rand(rng) % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + (c_rand(rng) % h) / 2;
        let s = Skyscraper {
            xoff: offset,
            width,
            height,
            windows: true,
            color: 0,
        };
        draw_skyscraper(canvas, &s, rng);
        offset += width + 5;
    }
}

/// Every pixel as a space with both colors set (black, two grays, white).
fn render_grays(canvas: &Canvas) -> Vec<u8> {
    let mut out = Vec::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let escape: &[u8] = match canvas.get(x, y) {
                1 => b"0;90;100m",
                2 => b"0;37;47m",
                3 => b"0;97;107m",
                _ => b"0;30;40m",
            };
            out.extend_from_slice(b"\x1b[");
            out.extend_from_slice(escape);
            out.extend_from_slice(b" \x1b[0m");
        }
        if y != canvas.height - 1 {
            out.push(b'\n');
        }
    }
    out
}

/// The optional integer arguments, in order, with their defaults; Redis's error for one that
/// is not an integer.
fn int_args<const N: usize>(args: &[Bytes], defaults: [i64; N]) -> Result<[i64; N], Reply> {
    let mut v = defaults;
    for (slot, a) in v.iter_mut().zip(args) {
        *slot = parse_i64(a).ok_or_else(|| Reply::err(err::NOT_INT))?;
    }
    Ok(v)
}

fn lolwut5(args: &[Bytes]) -> Reply {
    let [cols, per_row, per_col] = match int_args(args, [66, 8, 12]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let canvas = schotter(
        cols.clamp(1, 1000) as i32,
        per_row.clamp(1, 200) as i32,
        per_col.clamp(1, 200) as i32,
        &mut rand::thread_rng(),
    );
    let mut out = render_braille(&canvas);
    out.extend_from_slice(b"\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    out.extend_from_slice(crate::REDIS_COMPAT_VERSION.as_bytes());
    out.push(b'\n');
    Reply::Verbatim(Bytes::from(out))
}

fn lolwut6(args: &[Bytes]) -> Reply {
    let [cols, rows] = match int_args(args, [80, 20]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut canvas = Canvas::new(cols.clamp(1, 1000) as i32, rows.clamp(1, 1000) as i32, 3);
    skyline(&mut canvas, &mut rand::thread_rng());
    let mut out = render_grays(&canvas);
    out.extend_from_slice(
        b"\nDedicated to the 8 bit game developers of past and present.\n\
          Original 8 bit image from Plaguemon by hikikomori. Redis ver. ",
    );
    out.extend_from_slice(crate::REDIS_COMPAT_VERSION.as_bytes());
    out.push(b'\n');
    Reply::Verbatim(Bytes::from(out))
}

/// LOLWUT [VERSION v] [args…]
pub(super) fn lolwut(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (version, rest) = if args.len() >= 3 && args[1].eq_ignore_ascii_case(b"version") {
        let Some(v) = parse_i64(&args[2]) else {
            return Reply::err(err::NOT_INT);
        };
        // Redis prints the number as an unsigned int: VERSION 4294967301 is 5.
        (format!("{}.0.0", v as u32), &args[3..])
    } else {
        (crate::REDIS_COMPAT_VERSION.to_string(), &args[1..])
    };
    // Redis chooses by the version string: 5.x and 4.9 draw Schotter, 6.x and 5.9 the skyline.
    let v = version.as_bytes();
    let (major, dot, minor) = (v[0], v.get(1) == Some(&b'.'), v.get(2).copied());
    if dot && ((major == b'5' && minor != Some(b'9')) || (major == b'4' && minor == Some(b'9'))) {
        lolwut5(rest)
    } else if dot
        && ((major == b'6' && minor != Some(b'9')) || (major == b'5' && minor == Some(b'9')))
    {
        lolwut6(rest)
    } else {
        Reply::Verbatim(Bytes::from(format!(
            "Redis ver. {}\n",
            crate::REDIS_COMPAT_VERSION
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schotter_of_two_rows_is_not_random() {
        let mut a = rand::thread_rng();
        let one = render_braille(&schotter(66, 8, 2, &mut a));
        let two = render_braille(&schotter(66, 8, 2, &mut a));
        assert_eq!(one, two);
        // 132 × (2 × 16 + 4) pixels: 9 rows of 66 characters (3 bytes each), 9 newlines.
        assert_eq!(one.len(), 9 * 66 * 3 + 9);
    }

    #[test]
    fn the_skyline_stays_inside_its_canvas() {
        let mut rng = rand::thread_rng();
        for (w, h) in [(1, 1), (2, 3), (80, 20), (7, 1000)] {
            let mut c = Canvas::new(w, h, 3);
            skyline(&mut c, &mut rng);
            assert!(c.pixels.iter().all(|&p| p <= 3));
            let text = render_grays(&c);
            assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), h as usize - 1);
        }
    }
}
