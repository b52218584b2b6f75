//! The input format of the request-path targets: a few HTTP exchanges written as text lines, so
//! that seeds are readable and libFuzzer's mutations (byte flips, splices, dictionary words) stay
//! meaningful.
//!
//! ```text
//! <byte: which configuration>
//! :method:GET                 request headers, `name:value` (a pseudo-header's own colon first)
//! cookie:user=42
//! +x-forwarded-for:10.0.0.1,  `+`: the value repeated to at least 16 KiB
//! @source.address=10.1.2.3:80 a property for this exchange
//! >{"amount": 12}             a line of the request body (each `>` line adds itself and `\n`)
//! ~1500                       move the clock 1500 ms before this exchange
//! --                          the response headers follow
//! :status:503
//! ==                          the next exchange
//! ```
//!
//! Names are lowercased as Envoy's codecs deliver them; values are decoded as the shim decodes
//! them (invalid UTF-8 replaced, never a panic). Repeated names stay repeated. A body's bytes
//! are kept as they are: it reaches a filter that reads bodies in two chunks, as Envoy
//! delivers a body that arrives in parts.

/// One request and the upstream's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exchange {
    /// Request headers, in order (repeats kept).
    pub request: Vec<(String, String)>,
    /// Response headers, in order.
    pub response: Vec<(String, String)>,
    /// Properties by dotted path (`source.address`).
    pub properties: Vec<(String, Vec<u8>)>,
    /// Milliseconds the clock moves before the request.
    pub advance_ms: u64,
    /// The request body (empty: a request without one).
    pub body: Vec<u8>,
}

/// A decoded input: which of the target's configurations, and the exchanges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    /// Index into the target's configurations (modulo their number).
    pub config: usize,
    /// The exchanges, at most [`MAX_EXCHANGES`].
    pub exchanges: Vec<Exchange>,
}

/// Exchanges per input beyond which the rest is ignored (keeps every input fast).
pub const MAX_EXCHANGES: usize = 16;
/// Header lines per exchange beyond which the rest is ignored.
pub const MAX_HEADERS: usize = 128;
/// A `+` line's value is repeated to at least this many bytes.
pub const HUGE: usize = 16 * 1024;
/// Body bytes per exchange beyond which further `>` lines are ignored.
pub const MAX_BODY: usize = 64 * 1024;

/// Decodes fuzz bytes (never fails: every input is some scenario).
pub fn parse(data: &[u8]) -> Scenario {
    let Some((&config, rest)) = data.split_first() else {
        return Scenario::default();
    };
    let mut scenario = Scenario {
        config: usize::from(config),
        exchanges: Vec::new(),
    };
    for block in split(rest, b"\n==\n") {
        if scenario.exchanges.len() == MAX_EXCHANGES {
            break;
        }
        let mut exchange = Exchange::default();
        let mut response = false;
        for line in block.split(|&b| b == b'\n') {
            match line {
                b"--" => response = true,
                [b'@', property @ ..] => {
                    let (path, value) = split_once(property, b'=');
                    exchange
                        .properties
                        .push((String::from_utf8_lossy(path).into_owned(), value.to_vec()));
                }
                [b'>', line @ ..] if !response => {
                    if exchange.body.len() < MAX_BODY {
                        exchange.body.extend_from_slice(line);
                        exchange.body.push(b'\n');
                    }
                }
                [b'~', millis @ ..] => {
                    let millis = String::from_utf8_lossy(millis);
                    exchange.advance_ms = millis.trim().parse::<u64>().unwrap_or(0) % 86_400_000;
                }
                [] => {}
                _ => {
                    let headers = if response {
                        &mut exchange.response
                    } else {
                        &mut exchange.request
                    };
                    if headers.len() < MAX_HEADERS {
                        headers.push(header(line));
                    }
                }
            }
        }
        scenario.exchanges.push(exchange);
    }
    scenario
}

/// Encodes a scenario (seeds are written this way); `parse(&encode(s)) == s` for scenarios
/// whose names and values hold no newline, whose names hold no colon past a leading one, and
/// whose body is empty or ends with a newline.
pub fn encode(scenario: &Scenario) -> Vec<u8> {
    let mut out = vec![u8::try_from(scenario.config).unwrap_or(0)];
    for (index, exchange) in scenario.exchanges.iter().enumerate() {
        if index > 0 {
            out.extend_from_slice(b"\n==\n");
        }
        if exchange.advance_ms > 0 {
            out.extend_from_slice(format!("~{}\n", exchange.advance_ms).as_bytes());
        }
        for (path, value) in &exchange.properties {
            out.push(b'@');
            out.extend_from_slice(path.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
            out.push(b'\n');
        }
        for (name, value) in &exchange.request {
            out.extend_from_slice(format!("{name}:{value}\n").as_bytes());
        }
        let body = exchange.body.strip_suffix(b"\n").unwrap_or(&exchange.body);
        if !exchange.body.is_empty() {
            for line in body.split(|&b| b == b'\n') {
                out.push(b'>');
                out.extend_from_slice(line);
                out.push(b'\n');
            }
        }
        if !exchange.response.is_empty() {
            out.extend_from_slice(b"--\n");
            for (name, value) in &exchange.response {
                out.extend_from_slice(format!("{name}:{value}\n").as_bytes());
            }
        }
    }
    out
}

/// A scenario of one exchange with these request headers.
pub fn request(config: usize, headers: &[(&str, &str)]) -> Scenario {
    Scenario {
        config,
        exchanges: vec![Exchange {
            request: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            ..Exchange::default()
        }],
    }
}

fn header(line: &[u8]) -> (String, String) {
    let (huge, line) = match line {
        [b'+', rest @ ..] => (true, rest),
        _ => (false, line),
    };
    // A pseudo-header's name starts with its own colon.
    let (name, value) = match line {
        [b':', rest @ ..] => {
            let (name, value) = split_once(rest, b':');
            (format!(":{}", String::from_utf8_lossy(name)), value)
        }
        _ => {
            let (name, value) = split_once(line, b':');
            (String::from_utf8_lossy(name).into_owned(), value)
        }
    };
    let mut value = String::from_utf8_lossy(value).into_owned();
    if huge && !value.is_empty() {
        value = value.repeat(HUGE.div_ceil(value.len()));
    }
    (name.to_ascii_lowercase(), value)
}

fn split_once(bytes: &[u8], at: u8) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == at) {
        Some(index) => (
            bytes.get(..index).unwrap_or_default(),
            bytes.get(index + 1..).unwrap_or_default(),
        ),
        None => (bytes, &[]),
    }
}

fn split<'a>(bytes: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match current
            .windows(separator.len())
            .position(|window| window == separator)
        {
            Some(index) => {
                rest = current.get(index + separator.len()..);
                current.get(..index)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip() {
        let scenario = Scenario {
            config: 2,
            exchanges: vec![
                Exchange {
                    request: vec![
                        (":path".into(), "/cart?x=1".into()),
                        ("cookie".into(), "a=1; b=2".into()),
                        ("cookie".into(), "c=3".into()),
                    ],
                    response: vec![(":status".into(), "503".into())],
                    properties: vec![("source.address".into(), b"10.0.0.1:80".to_vec())],
                    advance_ms: 1500,
                    body: b"{\"amount\": 12,\n \"note\": \"\xff\"}\n".to_vec(),
                },
                Exchange::default(),
            ],
        };
        assert_eq!(parse(&encode(&scenario)), scenario);
    }

    #[test]
    fn huge_values_and_invalid_utf8() {
        let scenario = parse(b"\x01+x-forwarded-for:1.2.3.4,\nx-bad:\xff\xfe");
        let request = &scenario.exchanges[0].request;
        assert!(request[0].1.len() >= HUGE, "{}", request[0].1.len());
        assert_eq!(
            request[1],
            ("x-bad".to_string(), "\u{fffd}\u{fffd}".to_string())
        );
    }

    #[test]
    fn body_lines_keep_their_bytes_and_stay_before_the_response() {
        let scenario = parse(b"\x00:path:/x\n>{\"a\":\n>\xff}\n--\n>not body\n");
        let exchange = &scenario.exchanges[0];
        assert_eq!(exchange.body, b"{\"a\":\n\xff}\n");
        assert_eq!(
            exchange.response,
            vec![(">not body".to_string(), String::new())],
            "after `--` a `>` line is a response header like any other"
        );
    }

    #[test]
    fn every_input_decodes() {
        assert_eq!(parse(b""), Scenario::default());
        assert_eq!(parse(b"\x07").exchanges.len(), 1);
        let many = [b"\x00".as_slice(), &b"a:b\n==\n".repeat(100)].concat();
        assert_eq!(parse(&many).exchanges.len(), MAX_EXCHANGES);
    }
}
