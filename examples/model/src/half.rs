//! `f32` to IEEE half precision, for the weights the GPU reads as `f16`.
//! Shared with `build.rs`, which hashes the converted file: the bytes the
//! tool uploads must be exactly those, on every machine.

/// The half-precision bits of `x`, rounded to nearest, ties to even;
/// out-of-range values become infinities, NaNs stay NaNs.
pub fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        // Infinity, or a NaN kept quiet and non-zero.
        return sign | 0x7c00 | if mantissa == 0 { 0 } else { 0x200 | (mantissa >> 13) as u16 };
    }
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        // Subnormal in half precision, or zero.
        if half_exponent < -10 {
            return sign;
        }
        let full = mantissa | 0x80_0000;
        let shift = (14 - half_exponent) as u32;
        return sign | round_shift(full, shift) as u16;
    }
    // A carry out of the mantissa rounds into the exponent, as it should.
    sign | ((((half_exponent as u32) << 10) + round_shift(mantissa, 13)) as u16)
}

/// `value >> shift`, rounded to nearest, ties to even.
fn round_shift(value: u32, shift: u32) -> u32 {
    let kept = value >> shift;
    let rest = value & ((1 << shift) - 1);
    let half = 1 << (shift - 1);
    kept + u32::from(rest > half || (rest == half && kept & 1 == 1))
}

/// The little-endian `f32`s of `bytes` (whole values only) as
/// little-endian `f16`s.
pub fn to_f16_bytes(bytes: &[u8]) -> Vec<u8> {
    bytes.chunks_exact(4).flat_map(|b| f16_bits(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::f16_bits;

    /// The value of half-precision `bits`.
    fn value(bits: u16) -> f32 {
        let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
        let exponent = i32::from((bits >> 10) & 0x1f);
        let mantissa = f32::from(bits & 0x3ff);
        match exponent {
            0 => sign * mantissa * 2f32.powi(-24),
            0x1f if mantissa == 0.0 => sign * f32::INFINITY,
            0x1f => f32::NAN,
            _ => sign * (1.0 + mantissa / 1024.0) * 2f32.powi(exponent - 15),
        }
    }

    #[test]
    fn known_values_convert_exactly() {
        let cases: [(f32, u16); 12] = [
            (0.0, 0x0000),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (0.333_333_34, 0x3555),
            (65504.0, 0x7bff),
            (65520.0, 0x7c00),
            (f32::INFINITY, 0x7c00),
            (6.103_515_6e-5, 0x0400),
            (5.960_464_5e-8, 0x0001),
            (1e-8, 0x0000),
            (1.000_488_3, 0x3c00),
        ];
        for (x, bits) in cases {
            assert_eq!(f16_bits(x), bits, "{x}");
        }
        assert!(value(f16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn every_value_rounds_to_the_nearest_half() {
        // Walk f32s across the half range: the chosen half is never
        // farther than its neighbours.
        let mut x = 1e-9f32;
        while x < 70000.0 {
            let bits = f16_bits(x);
            let got = value(bits);
            if got.is_finite() {
                let error = (got - x).abs();
                let neighbours = [bits.wrapping_sub(1), bits + 1].map(value);
                for other in neighbours.into_iter().filter(|v| v.is_finite()) {
                    assert!(error <= (other - x).abs(), "{x}: {got} chosen over {other}");
                }
            }
            x *= 1.000_37;
        }
    }
}
