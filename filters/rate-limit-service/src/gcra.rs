//! GCRA, the generic cell rate algorithm, with the semantics of the rate-limit filter's local
//! limits (governor's GCRA there): a key's whole state is one timestamp, its theoretical arrival
//! time (TAT). A rate of `requests_per_unit` per `unit` has the emission interval
//! `T = unit / requests_per_unit` and, with a burst of `requests_per_unit`, the tolerance
//! `tau = unit`. A request of `n` hits is admitted when `max(TAT, now) + n·T - now <= tau`, and
//! only then moves TAT there. So a fresh key admits a whole unit's worth at once, and budget
//! comes back one request every `T`; a refused request costs nothing.
//!
//! Where this differs from envoyproxy/ratelimit's fixed window (a counter per calendar window):
//! - **No double burst at window edges.** A fixed window admits `requests_per_unit` at the end
//!   of one window and again at the start of the next; GCRA admits at most
//!   `requests_per_unit + rate·t` in any interval of length `t`.
//! - **Budget returns continuously**, one request every `T`, not all at once at the window's
//!   end; `limit_remaining` is what could be admitted right now.
//! - **A refused request costs nothing**, and a request with several descriptors is charged on
//!   all of them or on none (envoyproxy/ratelimit increments every matched counter, also when
//!   another descriptor refuses).
//! - **`duration_until_reset`**: on `OVER_LIMIT`, the wait until the request would be admitted
//!   (a correct `Retry-After`); on `OK`, the time until the whole budget is back. A fixed window
//!   reports the window's end in both cases.
//!
//! Time comes from Redis (`TIME`, microseconds), so every replica of the service shares one
//! clock. The arithmetic is exact: TAT is kept as whole microseconds plus a fraction in units of
//! `1 / requests_per_unit` µs, so `T` never rounds. Lua numbers are doubles; every value the
//! script handles stays below 2^53 (TATs near 1.8·10^15 µs, fractions below `requests_per_unit`),
//! and the products that would not (`hits · unit`) are computed here in `u128` and passed in.

use std::time::Duration;

use crate::config::Rate;

/// A theoretical arrival time: `floor + frac / requests_per_unit` microseconds since the Unix
/// epoch, on Redis's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tat {
    /// Whole microseconds.
    pub floor: u64,
    /// The fraction of a microsecond, in units of `1 / requests_per_unit`.
    pub frac: u64,
}

/// The time `n` hits take: `n · T`, in the same representation as [`Tat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Whole microseconds.
    pub floor: u64,
    /// The fraction, in units of `1 / requests_per_unit` µs.
    pub frac: u64,
}

/// The cost of `hits` hits under `rate` (`requests_per_unit > 0`). Any number of hits above
/// the burst can never be admitted, so hits are capped at `requests_per_unit + 1`, which keeps
/// every figure the script sees far below 2^53.
pub fn cost(hits: u64, rate: Rate) -> Cost {
    let per_unit = u128::from(rate.requests_per_unit.max(1));
    let hits = u128::from(hits).min(per_unit + 1);
    let total = hits * u128::from(rate.unit_micros());
    Cost {
        floor: u64::try_from(total / per_unit).unwrap_or(u64::MAX),
        frac: u64::try_from(total % per_unit).unwrap_or(0),
    }
}

/// `tat - now` in units of `1 / requests_per_unit` µs (may be negative).
fn scaled_since(now: u64, tat: Tat, rate: Rate) -> i128 {
    let per_unit = i128::from(rate.requests_per_unit.max(1));
    (i128::from(tat.floor) - i128::from(now)) * per_unit + i128::from(tat.frac)
}

/// Requests that could be admitted now, given the key's TAT.
pub fn remaining(now: u64, tat: Tat, rate: Rate) -> u32 {
    // (now + tau - tat) / T, with tau = unit and T = unit / requests_per_unit.
    let per_unit = i128::from(rate.requests_per_unit);
    let unit = i128::from(rate.unit_micros());
    let headroom = unit * per_unit - scaled_since(now, tat, rate);
    if headroom <= 0 || per_unit == 0 {
        return 0;
    }
    u32::try_from((headroom / unit).min(per_unit)).unwrap_or(u32::MAX)
}

/// How long until the whole budget is back (`tat - now`, rounded up to the nanosecond).
pub fn until_full(now: u64, tat: Tat, rate: Rate) -> Duration {
    nanos_of_scaled(scaled_since(now, tat, rate), rate)
}

/// How long until a request costing `cost` would be admitted, given the key's TAT before it:
/// `tat + cost - tau - now`.
pub fn wait(now: u64, tat: Tat, cost: Cost, rate: Rate) -> Duration {
    let per_unit = i128::from(rate.requests_per_unit.max(1));
    let scaled =
        scaled_since(now, tat, rate) + i128::from(cost.floor) * per_unit + i128::from(cost.frac)
            - i128::from(rate.unit_micros()) * per_unit;
    nanos_of_scaled(scaled, rate)
}

fn nanos_of_scaled(scaled: i128, rate: Rate) -> Duration {
    if scaled <= 0 {
        return Duration::ZERO;
    }
    let per_unit = i128::from(rate.requests_per_unit.max(1));
    let nanos = (scaled * 1_000 + per_unit - 1) / per_unit;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// The decision the Redis script makes for one key, as plain Rust: the reference the script is
/// tested against. Returns whether `cost` is admitted and the TAT after it (unchanged if not).
pub fn decide(stored: Option<Tat>, now: u64, cost: Cost, rate: Rate) -> (bool, Tat) {
    let per_unit = u64::from(rate.requests_per_unit.max(1));
    let tat = match stored {
        Some(tat) if tat.floor >= now => tat,
        _ => Tat {
            floor: now,
            frac: 0,
        },
    };
    let mut next = Tat {
        floor: tat.floor + cost.floor,
        frac: tat.frac + cost.frac,
    };
    if next.frac >= per_unit {
        next.frac -= per_unit;
        next.floor += 1;
    }
    let tau = rate.unit_micros();
    let ahead = next.floor - now;
    let admitted = ahead < tau || (ahead == tau && next.frac == 0);
    if admitted { (true, next) } else { (false, tat) }
}

/// The script: one atomic decision over every limited descriptor of a request.
///
/// `KEYS[i]` is descriptor `i`'s counter; `ARGV` holds six fields per key: cost (whole µs),
/// cost (fraction), `requests_per_unit`, `tau` (µs), enforced (`1`) or shadow (`0`), and the
/// mode: `0` charge, `1` refund (`is_negative_hits`), `2` refuse (a zero limit). Keys repeated
/// within a request are charged cumulatively. Every key is judged first; only if no enforced
/// key refuses are the admitted ones written, each with a TTL that ends exactly when its TAT
/// passes (a key that has expired and one never seen are the same state).
///
/// Returns `[now_us, refused, (admitted, tat_floor, tat_frac) per key]`, where the TAT is the
/// state after the request if it was charged, else the state it was judged on.
pub const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = {}
local original = {}
local changed = {}
local results = {}
local refused = 0
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 6
  local cost_floor = tonumber(ARGV[b + 1])
  local cost_frac = tonumber(ARGV[b + 2])
  local per_unit = tonumber(ARGV[b + 3])
  local tau = tonumber(ARGV[b + 4])
  local enforced = ARGV[b + 5] == '1'
  local mode = ARGV[b + 6]
  local s = state[key]
  if s == nil then
    s = {now, 0}
    local v = redis.call('GET', key)
    if v then
      local f, r = string.match(v, '^(%d+):(%d+)$')
      if f then
        f = tonumber(f)
        r = tonumber(r)
        if r >= per_unit then r = per_unit - 1 end
        if f >= now then s = {f, r} end
      end
    end
    state[key] = s
    original[key] = s
  end
  local floor, frac = s[1], s[2]
  local admitted = 1
  if mode == '2' then
    admitted = 0
  elseif mode == '1' then
    local nf, nr = floor - cost_floor, frac - cost_frac
    if nr < 0 then nr = nr + per_unit; nf = nf - 1 end
    if nf < now then nf, nr = now, 0 end
    floor, frac = nf, nr
    changed[key] = true
  else
    local nf, nr = floor + cost_floor, frac + cost_frac
    if nr >= per_unit then nr = nr - per_unit; nf = nf + 1 end
    local ahead = nf - now
    if ahead < tau or (ahead == tau and nr == 0) then
      floor, frac = nf, nr
      changed[key] = true
    else
      admitted = 0
    end
  end
  state[key] = {floor, frac}
  if admitted == 0 and enforced then refused = 1 end
  results[i] = {admitted, floor, frac}
end
local out = {now, refused}
for i, key in ipairs(KEYS) do
  local r = results[i]
  out[#out + 1] = r[1]
  if refused == 1 then
    -- Nothing is charged: report the state every key was judged on.
    out[#out + 1] = original[key][1]
    out[#out + 1] = original[key][2]
  else
    out[#out + 1] = r[2]
    out[#out + 1] = r[3]
  end
end
if refused == 0 then
  for key, _ in pairs(changed) do
    local s = state[key]
    if s[1] <= now and s[2] == 0 then
      redis.call('DEL', key)
    else
      local ttl = math.floor((s[1] - now) / 1000) + 1
      redis.call('SET', key, string.format('%.0f:%.0f', s[1], s[2]), 'PX', ttl)
    end
  end
end
return out
"#;

#[cfg(test)]
mod tests;
