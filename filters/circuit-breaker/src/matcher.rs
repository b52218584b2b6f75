//! Which breaker guards a request: the first whose `match` holds (the shared route matcher,
//! [`meshguard_filter_core::route`]).
//!
//! Facts are read lazily through the request model, so a breaker that matches on the path alone
//! never pays for reading the cluster, and a request no breaker matches costs a header read or
//! two.

use meshguard_filter_core::route::RequestFacts;

use crate::config::Breaker;

/// Index of the first breaker matching `request`.
pub fn select(breakers: &[Breaker], request: &dyn RequestFacts) -> Option<usize> {
    breakers
        .iter()
        .position(|breaker| breaker.matcher.matches(request))
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::config::parse_config;

    #[derive(Default)]
    struct Request {
        path: &'static str,
        method: &'static str,
        host: Option<&'static str>,
        cluster: Option<&'static str>,
    }

    impl RequestFacts for Request {
        fn path(&self) -> Rc<str> {
            Rc::from(self.path)
        }
        fn method(&self) -> Rc<str> {
            Rc::from(self.method)
        }
        fn host(&self) -> Option<String> {
            self.host.map(str::to_string)
        }
        fn header(&self, _name: &str) -> Option<Rc<str>> {
            None
        }
        fn cluster(&self) -> Option<Rc<str>> {
            self.cluster.map(Rc::from)
        }
    }

    fn breakers(json: &str) -> Vec<Breaker> {
        parse_config(json.as_bytes()).unwrap().breakers
    }

    #[test]
    fn every_condition_must_hold_and_the_first_match_wins() {
        let breakers = breakers(
            r#"{"breakers":[
                {"name":"pay-post","match":{"prefix":"/api/payments","methods":["post"]}},
                {"name":"pay","match":{"prefix":"/api/payments"}},
                {"name":"by-cluster","match":{"cluster":"outbound|8080||product"}},
                {"name":"by-host","match":{"hosts":["*.search.svc"]}}
            ]}"#,
        );
        let cases = [
            (
                Request {
                    path: "/api/payments/1",
                    method: "POST",
                    ..Request::default()
                },
                Some(0),
            ),
            (
                Request {
                    path: "/api/payments",
                    method: "GET",
                    ..Request::default()
                },
                Some(1),
            ),
            (
                Request {
                    path: "/api/products",
                    cluster: Some("outbound|8080||product"),
                    ..Request::default()
                },
                Some(2),
            ),
            (
                Request {
                    path: "/q",
                    host: Some("eu.search.svc"),
                    ..Request::default()
                },
                Some(3),
            ),
            (
                Request {
                    path: "/q",
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
            r#"{"breakers":[{"name":"a","match":{"hosts":["Payment.Shop"],"cluster":"pay"}}]}"#,
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
}
