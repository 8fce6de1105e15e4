//! One parser for every number and name a user types (issue #16): checked
//! when the command line is parsed, so a bad value is a usage error (exit
//! 2) naming the flag and the accepted range, never a panic later.

/// The longest run netxray takes: a year, in seconds (a larger value would
/// overflow the timers).
pub const MAX_SECONDS: f64 = 365.0 * 86400.0;
/// Interval bounds, seconds.
pub const MIN_INTERVAL: f64 = 0.01;
pub const MAX_INTERVAL: f64 = 86400.0;
/// A task's command name is at most 15 bytes (TASK_COMM_LEN - 1).
pub const COMM_MAX: usize = 15;

fn seconds(s: &str, min: f64, max: f64, open_min: bool) -> Result<f64, String> {
    let range = if open_min {
        format!("more than {min} and at most {max}")
    } else {
        format!("{min} to {max}")
    };
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds (expected {range})"))?;
    let low_ok = if open_min { v > min } else { v >= min };
    if !v.is_finite() || !low_ok || v > max {
        return Err(format!("out of range: seconds from {range}"));
    }
    Ok(v)
}

/// `--duration`: 0 (stop at once) to a year.
pub fn duration(s: &str) -> Result<f64, String> {
    seconds(s, 0.0, MAX_SECONDS, false)
}

/// `--interval`: 0.01 s to a day.
pub fn interval(s: &str) -> Result<f64, String> {
    seconds(s, MIN_INTERVAL, MAX_INTERVAL, false)
}

/// `--ring-size` in KiB: a power of two from 4 KiB to 2 GiB (the ring
/// buffer's size is a power of two of pages, in a u32 of bytes).
pub fn ring_kib(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| "not a number of KiB (a power of two, 4 to 2097152)".to_string())?;
    if !v.is_power_of_two() || !(4..=2_097_152).contains(&v) {
        return Err(format!(
            "{v} KiB: the ring size must be a power of two of at least 4 KiB and at most 2097152"
        ));
    }
    Ok(v)
}

/// `--comm`: a name the kernel can hold (1 to 15 bytes).
pub fn comm(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > COMM_MAX {
        return Err(format!(
            "a command name is 1 to {COMM_MAX} bytes (the kernel keeps no more), got {}",
            s.len()
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("0"), Ok(0.0));
        assert_eq!(duration("2.5"), Ok(2.5));
        for bad in ["inf", "1e400", "1e19", "-1", "nan", "NaN", "x", ""] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn intervals() {
        assert_eq!(interval("1"), Ok(1.0));
        assert_eq!(interval("0.01"), Ok(0.01));
        for bad in ["0", "0.001", "inf", "1e300", "-1", "nan", "86401"] {
            assert!(interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ring_sizes() {
        assert_eq!(ring_kib("4"), Ok(4));
        assert_eq!(ring_kib("8192"), Ok(8192));
        for bad in ["0", "3", "6", "4194304", "x"] {
            assert!(ring_kib(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comms() {
        assert!(comm("nginx").is_ok());
        assert!(comm("exactly15bytes!").is_ok());
        assert!(comm("sixteen-bytes-xx").is_err());
        assert!(comm("").is_err());
    }
}
