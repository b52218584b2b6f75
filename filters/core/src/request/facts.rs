//! The one meaning of each request fact, as pure functions of what Envoy hands over.

use std::net::{IpAddr, SocketAddr};

/// The path part of a `:path`: without the query string or fragment. Envoy's `path` and
/// `safe_regex` route matches compare this; `prefix` compares the whole `:path`.
pub fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// The host of an `:authority`: lowercase, without port, userinfo or trailing dot
/// (`User@Shop.Example.:8443` -> `shop.example`, `[::1]:80` -> `[::1]`).
pub fn host_of(authority: &str) -> String {
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority.get(..=end))
            .unwrap_or(authority)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// The IP of an address as Envoy's `source.address` gives it: `1.2.3.4:5555`, `[::1]:5555` or a
/// bare IP.
pub fn client_ip(address: &str) -> Option<IpAddr> {
    let address = address.trim();
    address
        .parse::<SocketAddr>()
        .map(|socket| socket.ip())
        .ok()
        .or_else(|| address.parse::<IpAddr>().ok())
}

/// The value of cookie `name` in one `Cookie` header (`a=1; b=2`), first occurrence, without
/// surrounding double quotes. Cookie names are case-sensitive (RFC 6265). Cookies are untrusted
/// input: parsing never fails, it only finds or does not find a value.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if key.trim() != name {
            return None;
        }
        let value = value.trim();
        Some(
            value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_query_and_fragment() {
        assert_eq!(path_only("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_only("/a#f"), "/a");
        assert_eq!(path_only("/"), "/");
        assert_eq!(path_only(""), "");
    }

    #[test]
    fn hosts_are_normalised() {
        for (authority, host) in [
            ("Shop.Example:8443", "shop.example"),
            ("shop", "shop"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("user@api.shop.example.", "api.shop.example"),
            ("10.0.0.1:80", "10.0.0.1"),
        ] {
            assert_eq!(host_of(authority), host, "{authority}");
        }
    }

    #[test]
    fn client_addresses_parse_with_or_without_port() {
        assert_eq!(client_ip("10.1.2.3:5555"), "10.1.2.3".parse().ok());
        assert_eq!(client_ip("[::1]:80"), "::1".parse().ok());
        assert_eq!(client_ip("192.0.2.7"), "192.0.2.7".parse().ok());
        assert_eq!(client_ip("not an address"), None);
    }

    #[test]
    fn finds_cookies_among_others() {
        let header = r#"theme=dark; session=abc123;canary="v2"; empty=; =odd; noequals"#;
        for (name, expected) in [
            ("theme", Some("dark")),
            ("session", Some("abc123")),
            ("canary", Some("v2")),
            ("empty", Some("")),
            ("Session", None),
            ("missing", None),
            ("noequals", None),
        ] {
            assert_eq!(cookie_value(header, name), expected, "{name}");
        }
        assert_eq!(cookie_value("a=1; a=2", "a"), Some("1"));
        assert_eq!(cookie_value("", "a"), None);
    }
}
