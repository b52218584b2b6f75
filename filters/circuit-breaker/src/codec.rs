//! The compact binary form of a breaker's state in proxy-wasm shared data.
//!
//! Every request reads the state and every outcome rewrites it, so it is small and cheap to
//! decode: a fixed 22-byte header (what admission needs) followed by the window shape and the
//! window. Admission decodes only the header and, when it changes something (a half-open
//! permit, open -> half-open), writes a new header in front of the unchanged window bytes.
//!
//! ```text
//! 0      version (1)
//! 1      phase (0 closed, 1 open, 2 half-open)
//! 2..6   generation            u32 LE
//! 6..14  since_ms              u64 LE
//! 14..18 probes_issued         u32 LE
//! 18..22 probe_successes       u32 LE
//! 22     window kind (0 count, 1 time)
//! 23..27 window size (calls or seconds)
//! count: len, head, failures, slow (u32 LE each), then ceil(size/4) bytes of 2-bit slots
//! time:  size buckets of second, calls, failures, slow (u32 LE each)
//! ```
//!
//! Decoding is total: anything malformed is an error (the shell then starts from a fresh state),
//! never a panic.

use crate::machine::{Header, Phase, State};
use crate::window::{Bucket, CountWindow, TimeWindow, Window};

const VERSION: u8 = 1;
/// Bytes of the header proper (what admission rewrites).
pub const HEADER_LEN: usize = 22;

/// Stored bytes that are not a state this version understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Shorter than its shape requires.
    #[error("shared state is truncated")]
    Truncated,
    /// Written by another version of the filter.
    #[error("shared state has unknown version {0}")]
    Version(u8),
    /// A field holds an impossible value.
    #[error("shared state is corrupt ({0})")]
    Corrupt(&'static str),
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let head = self.bytes.get(..n).ok_or(CodecError::Truncated)?;
        self.bytes = self.bytes.get(n..).unwrap_or_default();
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        self.take(1)?.first().copied().ok_or(CodecError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        let bytes: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| CodecError::Truncated)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        let bytes: [u8; 8] = self
            .take(8)?
            .try_into()
            .map_err(|_| CodecError::Truncated)?;
        Ok(u64::from_le_bytes(bytes))
    }
}

fn phase_byte(phase: Phase) -> u8 {
    match phase {
        Phase::Closed => 0,
        Phase::Open => 1,
        Phase::HalfOpen => 2,
    }
}

fn put_header(out: &mut Vec<u8>, header: &Header) {
    out.push(VERSION);
    out.push(phase_byte(header.phase));
    out.extend_from_slice(&header.generation.to_le_bytes());
    out.extend_from_slice(&header.since_ms.to_le_bytes());
    out.extend_from_slice(&header.probes_issued.to_le_bytes());
    out.extend_from_slice(&header.probe_successes.to_le_bytes());
}

fn read_header(reader: &mut Reader<'_>) -> Result<Header, CodecError> {
    let version = reader.u8()?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let phase = match reader.u8()? {
        0 => Phase::Closed,
        1 => Phase::Open,
        2 => Phase::HalfOpen,
        _ => return Err(CodecError::Corrupt("phase")),
    };
    Ok(Header {
        phase,
        generation: reader.u32()?,
        since_ms: reader.u64()?,
        probes_issued: reader.u32()?,
        probe_successes: reader.u32()?,
    })
}

/// Encodes a whole state.
pub fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 5 + window_len(&state.window));
    put_header(&mut out, &state.header);
    match &state.window {
        Window::Count(window) => {
            out.push(0);
            for value in [
                window.size,
                window.len,
                window.head,
                window.failures,
                window.slow,
            ] {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.extend_from_slice(&window.slots);
        }
        Window::Time(window) => {
            out.push(1);
            out.extend_from_slice(&window.seconds().to_le_bytes());
            for bucket in &window.buckets {
                for value in [bucket.second, bucket.calls, bucket.failures, bucket.slow] {
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
    }
    out
}

fn window_len(window: &Window) -> usize {
    match window {
        Window::Count(window) => 16 + window.slots.len(),
        Window::Time(window) => 16 * window.buckets.len(),
    }
}

/// Decodes only the header (the admission path).
pub fn decode_header(bytes: &[u8]) -> Result<Header, CodecError> {
    read_header(&mut Reader { bytes })
}

/// Replaces the header of encoded state `bytes`, keeping the window bytes as they are.
pub fn patch_header(bytes: &[u8], header: &Header) -> Result<Vec<u8>, CodecError> {
    let rest = bytes.get(HEADER_LEN..).ok_or(CodecError::Truncated)?;
    let mut out = Vec::with_capacity(bytes.len());
    put_header(&mut out, header);
    out.extend_from_slice(rest);
    Ok(out)
}

/// Decodes a whole state.
pub fn decode(bytes: &[u8]) -> Result<State, CodecError> {
    let mut reader = Reader { bytes };
    let header = read_header(&mut reader)?;
    let window = match reader.u8()? {
        0 => {
            let size = reader.u32()?;
            if size == 0 || size > crate::config::MAX_COUNT_WINDOW {
                return Err(CodecError::Corrupt("count window size"));
            }
            let mut window = CountWindow {
                size,
                len: reader.u32()?,
                head: reader.u32()?,
                failures: reader.u32()?,
                slow: reader.u32()?,
                slots: Vec::new(),
            };
            window.slots = reader.take(CountWindow::slot_bytes(size))?.to_vec();
            if !window.is_consistent() {
                return Err(CodecError::Corrupt("count window totals"));
            }
            Window::Count(window)
        }
        1 => {
            let seconds = reader.u32()?;
            if seconds == 0 || seconds > crate::config::MAX_TIME_WINDOW {
                return Err(CodecError::Corrupt("time window size"));
            }
            let mut buckets = Vec::with_capacity(seconds as usize);
            for _ in 0..seconds {
                buckets.push(Bucket {
                    second: reader.u32()?,
                    calls: reader.u32()?,
                    failures: reader.u32()?,
                    slow: reader.u32()?,
                });
            }
            Window::Time(TimeWindow { buckets })
        }
        _ => return Err(CodecError::Corrupt("window kind")),
    };
    if !reader.bytes.is_empty() {
        return Err(CodecError::Corrupt("trailing bytes"));
    }
    Ok(State { header, window })
}

/// Encodes the bulkhead's in-flight counter.
pub fn encode_count(count: u32) -> [u8; 4] {
    count.to_le_bytes()
}

/// Decodes the bulkhead's in-flight counter (malformed reads as 0).
pub fn decode_count(bytes: &[u8]) -> u32 {
    bytes.try_into().map(u32::from_le_bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::Window;

    fn sample(window: Window) -> State {
        State {
            header: Header {
                phase: Phase::HalfOpen,
                generation: 7,
                since_ms: 1_700_000_000_123,
                probes_issued: 2,
                probe_successes: 1,
            },
            window,
        }
    }

    #[test]
    fn count_state_round_trips_compactly() {
        let mut window = CountWindow::new(100);
        for call in 0..130 {
            window.record(call % 4 == 0, call % 7 == 0);
        }
        let state = sample(Window::Count(window));
        let bytes = encode(&state);
        assert_eq!(bytes.len(), HEADER_LEN + 5 + 16 + 25);
        assert_eq!(decode(&bytes).unwrap(), state);
        assert_eq!(decode_header(&bytes).unwrap(), state.header);
    }

    #[test]
    fn time_state_round_trips() {
        let mut window = TimeWindow::new(30);
        for second in 0..50 {
            window.record(1_700_000_000 + second, second % 2 == 0, second % 3 == 0);
        }
        let state = sample(Window::Time(window));
        assert_eq!(decode(&encode(&state)).unwrap(), state);
    }

    #[test]
    fn patching_the_header_keeps_the_window() {
        let mut window = CountWindow::new(10);
        window.record(true, false);
        let state = sample(Window::Count(window));
        let bytes = encode(&state);
        let header = Header {
            phase: Phase::Open,
            generation: 8,
            ..state.header
        };
        let patched = patch_header(&bytes, &header).unwrap();
        assert_eq!(
            decode(&patched).unwrap(),
            State {
                header,
                window: state.window
            }
        );
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let good = encode(&sample(Window::Count(CountWindow::new(9))));
        for cut in 0..good.len() {
            assert!(decode(good.get(..cut).unwrap()).is_err(), "cut at {cut}");
        }
        let mut bad_version = good.clone();
        bad_version[0] = 9;
        assert_eq!(decode(&bad_version), Err(CodecError::Version(9)));
        let mut bad_phase = good.clone();
        bad_phase[1] = 3;
        assert_eq!(decode(&bad_phase), Err(CodecError::Corrupt("phase")));
        let mut bad_totals = good.clone();
        bad_totals[HEADER_LEN + 5 + 8] = 1; // failures = 1 with no failed slot
        assert_eq!(
            decode(&bad_totals),
            Err(CodecError::Corrupt("count window totals"))
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            decode(&trailing),
            Err(CodecError::Corrupt("trailing bytes"))
        );
        let mut huge = good;
        huge[HEADER_LEN + 1..HEADER_LEN + 5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
        assert_eq!(decode_count(b"\x01\x00"), 0);
        assert_eq!(decode_count(&encode_count(42)), 42);
    }
}
