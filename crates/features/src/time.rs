//! Timestamps: RFC 3339 text or epoch seconds, and their calendar parts in UTC.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` (a space may replace `T`) into epoch seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let month_days = [
        31,
        if is_leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || d < 1
        || d > month_days[(mo - 1) as usize]
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut fraction = 0.0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        fraction = format!("0.{}", &frac[..digits]).parse().ok()?;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = rest.as_bytes();
            if r.len() != 6 || r[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    #[expect(
        clippy::cast_precision_loss,
        reason = "epoch seconds fit f64 exactly for any real date"
    )]
    Some(secs as f64 + fraction)
}

/// Calendar parts of a UTC instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// 0–23.
    pub hour: u32,
    /// Monday = 0 … Sunday = 6, as pandas' `dayofweek`.
    pub weekday: u32,
    /// 1–12.
    pub month: u32,
    /// 1–366.
    pub day_of_year: u32,
}

/// The UTC calendar parts of `epoch` seconds.
pub fn parts(epoch: f64) -> Parts {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "floored epoch seconds of real dates fit i64"
    )]
    let secs = epoch.floor() as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, _) = civil_from_days(days);
    let to_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    Parts {
        hour: to_u32(secs.rem_euclid(86_400) / 3600),
        // 1970-01-01 was a Thursday (3).
        weekday: to_u32((days + 3).rem_euclid(7)),
        month: to_u32(m),
        day_of_year: to_u32(days - days_from_civil(y, 1, 1) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2026-03-02T10:00:00Z"), Some(1_772_445_600.0));
        assert_eq!(
            parse_rfc3339("2026-03-02T12:00:00+02:00"),
            Some(1_772_445_600.0)
        );
        assert_eq!(
            parse_rfc3339("2026-03-02 10:00:00.5Z"),
            Some(1_772_445_600.5)
        );
        assert_eq!(parse_rfc3339("2026-02-30T10:00:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn calendar_parts() {
        let p = parts(1_772_445_600.0); // 2026-03-02T10:00:00Z, a Monday
        assert_eq!(
            p,
            Parts {
                hour: 10,
                weekday: 0,
                month: 3,
                day_of_year: 61
            }
        );
        let p = parts(-1.0); // 1969-12-31T23:59:59Z, a Wednesday
        assert_eq!(
            p,
            Parts {
                hour: 23,
                weekday: 2,
                month: 12,
                day_of_year: 365
            }
        );
    }
}
