//! Which breaker guards a request: the first whose `match` holds.
//!
//! Request facts are read lazily through [`RequestFacts`], so a breaker that matches on the path
//! alone never pays for reading the `cluster_name` property, and a request no breaker matches
//! costs a header read or two.

use crate::config::{Breaker, Match};

/// What matching may ask about a request.
pub trait RequestFacts {
    /// Path without query or fragment.
    fn path(&self) -> Option<&str>;
    /// Method as sent (`GET`).
    fn method(&self) -> Option<&str>;
    /// Host in lowercase without port.
    fn host(&self) -> Option<&str>;
    /// Upstream cluster chosen by the route (`xds.cluster_name`).
    fn cluster(&self) -> Option<&str>;
}

impl Match {
    /// Whether every condition holds for `request`.
    pub fn matches(&self, request: &dyn RequestFacts) -> bool {
        if let Some(prefix) = &self.path_prefix
            && !request
                .path()
                .is_some_and(|path| path.starts_with(prefix.as_str()))
        {
            return false;
        }
        if let Some(methods) = &self.methods
            && !request
                .method()
                .is_some_and(|method| methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
        {
            return false;
        }
        if let Some(host) = &self.host
            && !request.host().is_some_and(|value| host.matches(value))
        {
            return false;
        }
        if let Some(cluster) = &self.cluster
            && request.cluster() != Some(cluster.as_str())
        {
            return false;
        }
        true
    }
}

/// Index of the first breaker matching `request`.
pub fn select(breakers: &[Breaker], request: &dyn RequestFacts) -> Option<usize> {
    breakers
        .iter()
        .position(|breaker| breaker.matcher.matches(request))
}

/// The path part of a `:path` (no query, no fragment).
pub fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// The host of an `:authority` in lowercase without port (`[::1]:80` -> `[::1]`).
pub fn host_only(authority: &str) -> String {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority.get(..=end).unwrap_or(authority),
            None => authority,
        }
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host)
    };
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_config;

    #[derive(Default)]
    struct Request {
        path: Option<&'static str>,
        method: Option<&'static str>,
        host: Option<&'static str>,
        cluster: Option<&'static str>,
    }

    impl RequestFacts for Request {
        fn path(&self) -> Option<&str> {
            self.path
        }
        fn method(&self) -> Option<&str> {
            self.method
        }
        fn host(&self) -> Option<&str> {
            self.host
        }
        fn cluster(&self) -> Option<&str> {
            self.cluster
        }
    }

    fn breakers(json: &str) -> Vec<Breaker> {
        parse_config(json.as_bytes()).unwrap().breakers
    }

    #[test]
    fn every_condition_must_hold_and_the_first_match_wins() {
        let breakers = breakers(
            r#"{"breakers":[
                {"name":"pay-post","match":{"pathPrefix":"/api/payments","methods":["post"]}},
                {"name":"pay","match":{"pathPrefix":"/api/payments"}},
                {"name":"by-cluster","match":{"cluster":"outbound|8080||product"}},
                {"name":"by-host","match":{"host":"*.search.svc"}}
            ]}"#,
        );
        let cases = [
            (
                Request {
                    path: Some("/api/payments/1"),
                    method: Some("POST"),
                    ..Request::default()
                },
                Some(0),
            ),
            (
                Request {
                    path: Some("/api/payments"),
                    method: Some("GET"),
                    ..Request::default()
                },
                Some(1),
            ),
            (
                Request {
                    path: Some("/api/products"),
                    cluster: Some("outbound|8080||product"),
                    ..Request::default()
                },
                Some(2),
            ),
            (
                Request {
                    path: Some("/q"),
                    host: Some("eu.search.svc"),
                    ..Request::default()
                },
                Some(3),
            ),
            (
                Request {
                    path: Some("/q"),
                    host: Some("search.svc"),
                    ..Request::default()
                },
                None,
            ),
            (Request::default(), None),
        ];
        for (request, expected) in cases {
            assert_eq!(select(&breakers, &request), expected);
        }
    }

    #[test]
    fn an_empty_match_guards_everything() {
        let breakers = breakers(r#"{"breakers":[{"name":"all"}]}"#);
        assert_eq!(select(&breakers, &Request::default()), Some(0));
    }

    #[test]
    fn exact_host_and_cluster() {
        let breakers = breakers(
            r#"{"breakers":[{"name":"a","match":{"host":"Payment.Shop","cluster":"pay"}}]}"#,
        );
        let request = |host, cluster| Request {
            host: Some(host),
            cluster: Some(cluster),
            ..Request::default()
        };
        assert_eq!(select(&breakers, &request("payment.shop", "pay")), Some(0));
        assert_eq!(select(&breakers, &request("payment.shop", "other")), None);
        assert_eq!(select(&breakers, &request("x.payment.shop", "pay")), None);
    }

    #[test]
    fn paths_and_hosts_are_normalised() {
        assert_eq!(path_only("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_only("/a#f"), "/a");
        assert_eq!(path_only("/"), "/");
        assert_eq!(host_only("Shop.Example:8443"), "shop.example");
        assert_eq!(host_only("shop"), "shop");
        assert_eq!(host_only("[::1]:80"), "[::1]");
    }
}
