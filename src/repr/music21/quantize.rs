//! music21's `Stream.quantize` with its default divisors (4, 3), as it computes:
//! in IEEE doubles, then stored through `opFrac`. The float rounding is not an
//! implementation detail here: it decides real cases (a duration of exactly 5/3
//! quarters becomes 1.75, because the 1/3 grid misses 5/3 by one ulp).

use std::cmp::Ordering;

use super::Q;

/// What music21 stores for the float `x` (`common.opFrac`): the exact value when its
/// denominator is at most 65535, else the nearest fraction with such a denominator.
pub fn op_frac(x: f64) -> Q {
    let (numerator, denominator) = exact_ratio(x);
    if denominator <= 65_535 {
        return Q::new(numerator as i64, denominator as i64);
    }
    limit_denominator(numerator, denominator, 65_535)
}

/// `x` as an exact fraction (`float.as_integer_ratio`), for the magnitudes music has.
fn exact_ratio(x: f64) -> (i128, i128) {
    if x == 0.0 {
        return (0, 1);
    }
    let bits = x.to_bits();
    let sign = if bits >> 63 == 1 { -1 } else { 1 };
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = (bits & ((1 << 52) - 1)) as i128;
    let (mut mantissa, mut power) =
        if exponent == 0 { (fraction, -1074) } else { (fraction | (1 << 52), exponent - 1075) };
    while mantissa % 2 == 0 && power < 0 {
        mantissa /= 2;
        power += 1;
    }
    if power >= 0 { (sign * (mantissa << power), 1) } else { (sign * mantissa, 1i128 << -power) }
}

/// Python's `Fraction.limit_denominator`: the closest fraction with a denominator of
/// at most `limit` (continued fractions; on a tie, the smaller denominator).
fn limit_denominator(numerator: i128, denominator: i128, limit: i128) -> Q {
    let (mut p0, mut q0, mut p1, mut q1) = (0i128, 1i128, 1i128, 0i128);
    let (mut n, mut d) = (numerator, denominator);
    loop {
        let a = n.div_euclid(d);
        let q2 = q0 + a * q1;
        if q2 > limit {
            break;
        }
        (p0, q0, p1, q1) = (p1, q1, p0 + a * p1, q2);
        (n, d) = (d, n - a * d);
        if d == 0 {
            break;
        }
    }
    let k = (limit - q0) / q1;
    let (bound1, bound2) = ((p0 + k * p1, q0 + k * q1), (p1, q1));
    let distance = |(p, q): (i128, i128)| {
        // |p/q − numerator/denominator| as a fraction, compared by cross-multiplying.
        ((p * denominator - numerator * q).abs(), q * denominator)
    };
    let (d1, d2) = (distance(bound2), distance(bound1));
    let chosen = if d1.0 * d2.1 <= d2.0 * d1.1 { bound2 } else { bound1 };
    Q::new(chosen.0 as i64, chosen.1 as i64)
}

/// The exact comparison of a fraction with a float, as Python makes it.
pub fn cmp_exact(q: Q, x: f64) -> Ordering {
    let (numerator, denominator) = exact_ratio(x);
    (i128::from(*q.numer()) * denominator).cmp(&(numerator * i128::from(*q.denom())))
}

pub fn to_f64(q: Q) -> f64 {
    *q.numer() as f64 / *q.denom() as f64
}

/// Python's `round(x, 7)`: decimal rounding, correctly rounded.
fn round7(x: f64) -> f64 {
    format!("{x:.7}").parse().expect("a formatted float parses")
}

/// `common.nearestMultiple`: the multiple of `unit` nearest `n`, ties going down.
fn nearest_multiple(n: f64, unit: f64) -> (f64, f64) {
    let multiple = (n / unit).floor();
    let half = unit / 2.0;
    let low = unit * multiple;
    let high = unit * (multiple + 1.0);
    if low <= n && n <= low + half { (low, round7(n - low)) } else { (high, round7(high - n)) }
}

/// `bestMatch` inside `Stream.quantize`: over the 1/4 and 1/3 grids, the match with
/// the least (remaining gap, error, grid, value).
pub fn best_match(target: f64, zero_allowed: bool, gap: f64) -> f64 {
    let candidates = [4.0, 3.0].map(|divisor: f64| {
        let tick = 1.0 / divisor;
        let (mut matched, mut error) = nearest_multiple(target, tick);
        if !zero_allowed && matched == 0.0 {
            matched = tick;
            error = round7(target - matched).abs();
        }
        let remaining = if gap % tick == 0.0 { 0.0 } else { (gap - matched).max(0.0) };
        (remaining, error, tick, matched)
    });
    let [first, second] = candidates;
    let key = |c: &(f64, f64, f64, f64)| [c.0, c.1, c.2, c.3];
    // Python compares the tuples with ==, so -0.0 and 0.0 tie.
    let lexicographic = key(&second).iter().zip(key(&first)).find_map(|(b, a)| match b.partial_cmp(&a) {
        Some(Ordering::Equal) | None => None,
        other => other,
    });
    if lexicographic == Some(Ordering::Less) { second.3 } else { first.3 }
}

/// Quantizes offsets and durations in place, in list order (the list is sorted);
/// `note_like[i]` says whether element `i` is a non-grace note or chord, which may
/// not be quantized to a zero duration.
pub fn quantize(offsets: &mut [Q], durations: &mut [Q], note_like: &[bool]) {
    let raw: Vec<f64> = offsets.iter().map(|&q| to_f64(q)).collect();
    let matched: Vec<f64> = raw.iter().map(|&r| best_match(r, true, 0.0)).collect();
    // For each element, the first later one whose quantized offset lies beyond its
    // own (a monotonic stack from the right, so a pile of simultaneous notes stays linear).
    let mut next_beyond = vec![None; raw.len()];
    let mut stack: Vec<usize> = Vec::new();
    for i in (0..raw.len()).rev() {
        while stack.last().is_some_and(|&j| matched[j] <= matched[i]) {
            stack.pop();
        }
        next_beyond[i] = stack.last().copied();
        stack.push(i);
    }
    for i in 0..raw.len() {
        offsets[i] = op_frac(matched[i]);
        let gap = next_beyond[i].map_or(0.0, |j| to_f64(op_frac(matched[j] - to_f64(offsets[i]))));
        durations[i] = op_frac(best_match(to_f64(durations[i]), !note_like[i], gap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_frac_keeps_small_denominators_and_snaps_thirds() {
        assert_eq!(op_frac(0.375), Q::new(3, 8));
        assert_eq!(op_frac(1.0 / 3.0), Q::new(1, 3));
        assert_eq!(op_frac((1.0 / 3.0) * 5.0), Q::new(5, 3));
    }

    #[test]
    fn the_grids_and_their_float_quirks() {
        // 0.375 goes to the 1/3 grid (error 1/24 against 1/8).
        assert_eq!(op_frac(best_match(0.375, true, 0.0)), Q::new(1, 3));
        // A duration of exactly 5/3 before a gap of 5/3 becomes 1.75: the 1/3 grid
        // misses the gap by one ulp.
        let five_thirds = to_f64(Q::new(5, 3));
        assert_eq!(best_match(five_thirds, false, five_thirds), 1.75);
        // Ties go down; zero is refused for notes.
        assert_eq!(best_match(0.125, true, 0.0), 0.0);
        assert_eq!(best_match(0.01, false, 0.0), 0.25);
    }

    #[test]
    fn exact_comparison_with_floats() {
        assert_eq!(cmp_exact(Q::new(1, 3), 1.0 / 3.0), Ordering::Greater);
        assert_eq!(cmp_exact(Q::new(1, 4), 0.25), Ordering::Equal);
    }
}
