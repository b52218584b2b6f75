//! Why a request is refused, and the answer it gets: RFC 6750 `WWW-Authenticate` challenges
//! with a small JSON body, one reason per metric.

use meshguard_filter_core::LocalResponse;

use crate::token::TokenError;

/// Why a token (or a request) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No token where the provider looks for one.
    Missing,
    /// Not a well-formed JWS, or a registered claim of the wrong type.
    Malformed(String),
    /// `alg` is none/unknown, or does not fit the key named by `kid`.
    Algorithm(String),
    /// No key signed it.
    BadSignature,
    /// No key has the token's `kid` (or none fits its `alg`).
    UnknownKid,
    /// `exp` has passed (beyond the clock skew).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the clock skew).
    NotYetValid(&'static str),
    /// No `exp` where one is required, or a lifetime above the maximum.
    Lifetime(String),
    /// `iss` is not the provider's issuer.
    Issuer,
    /// No `aud` value is accepted.
    Audience,
    /// The provider's remote JWKS has not been fetched yet.
    NoKeys(String),
    /// No rule allows the request (deny by default) or the rule denies it.
    Denied,
}

impl From<TokenError> for Failure {
    fn from(err: TokenError) -> Self {
        match err {
            TokenError::UnsupportedAlg(_) => Self::Algorithm(err.to_string()),
            other => Self::Malformed(other.to_string()),
        }
    }
}

impl Failure {
    /// Every reason, in metric order.
    pub const REASONS: [&'static str; 12] = [
        "missing",
        "malformed",
        "algorithm",
        "bad_signature",
        "unknown_kid",
        "expired",
        "not_yet_valid",
        "lifetime",
        "issuer",
        "audience",
        "no_keys",
        "no_rule",
    ];

    /// The short reason (metric suffix and JSON `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::Algorithm(_) => "algorithm",
            Self::BadSignature => "bad_signature",
            Self::UnknownKid => "unknown_kid",
            Self::Expired => "expired",
            Self::NotYetValid(_) => "not_yet_valid",
            Self::Lifetime(_) => "lifetime",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::NoKeys(_) => "no_keys",
            Self::Denied => "no_rule",
        }
    }

    /// A sentence for people.
    pub fn description(&self) -> String {
        match self {
            Self::Missing => "Jwt is missing".into(),
            Self::Malformed(why) | Self::Algorithm(why) | Self::Lifetime(why) => why.clone(),
            Self::BadSignature => "Jwt verification fails".into(),
            Self::UnknownKid => "Jwks doesn't have key to match kid or alg from Jwt".into(),
            Self::Expired => "Jwt is expired".into(),
            Self::NotYetValid(claim) => format!("Jwt not yet valid (`{claim}` is in the future)"),
            Self::Issuer => "Jwt issuer is not configured".into(),
            Self::Audience => "Audiences in Jwt are not allowed".into(),
            Self::NoKeys(provider) => format!(
                "Jwks for provider `{provider}` is not available yet (the first fetch has not succeeded)"
            ),
            Self::Denied => "no rule allows this request".into(),
        }
    }

    /// The local response: 401 with a Bearer challenge, or 403 when no rule allows the request.
    pub fn response(&self, realm: &str) -> LocalResponse {
        let realm = sanitize(realm);
        let description = self.description();
        if *self == Self::Denied {
            let body = serde_json::json!({
                "error": "forbidden",
                "reason": self.reason(),
                "message": description,
            });
            return LocalResponse::new(403, body.to_string())
                .with_header("content-type", "application/json");
        }
        let (challenge, error) = if *self == Self::Missing {
            // RFC 6750 §3.1: no error code when the request carried no credentials.
            (format!("Bearer realm=\"{realm}\""), "unauthorized")
        } else {
            (
                format!(
                    "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                    sanitize(&description)
                ),
                "invalid_token",
            )
        };
        let body = serde_json::json!({
            "error": error,
            "reason": self.reason(),
            "message": description,
        });
        LocalResponse::new(401, body.to_string())
            .with_header("www-authenticate", challenge)
            .with_header("content-type", "application/json")
    }
}

/// RFC 6750 quoted-string content: printable ASCII without `"` and `\`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(response: &'a LocalResponse, name: &str) -> &'a str {
        response
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn missing_token_gets_a_challenge_without_error() {
        let response = Failure::Missing.response("shop");
        assert_eq!(response.status, 401);
        assert_eq!(
            header(&response, "www-authenticate"),
            "Bearer realm=\"shop\""
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["reason"], "missing");
    }

    #[test]
    fn invalid_token_gets_invalid_token_with_a_description() {
        let response = Failure::Expired.response("shop");
        assert_eq!(
            header(&response, "www-authenticate"),
            "Bearer realm=\"shop\", error=\"invalid_token\", error_description=\"Jwt is expired\""
        );
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["reason"], "expired");
    }

    #[test]
    fn descriptions_cannot_break_out_of_the_quoted_string() {
        let response = Failure::Algorithm("alg \"x\\\"\r\n".into()).response("r\"e");
        let challenge = header(&response, "www-authenticate");
        assert_eq!(challenge.matches('"').count(), 6, "{challenge}");
        assert!(!challenge.contains(['\r', '\n', '\\']));
    }

    #[test]
    fn denial_is_forbidden() {
        let response = Failure::Denied.response("shop");
        assert_eq!(response.status, 403);
        assert!(
            response
                .headers
                .iter()
                .all(|(k, _)| k != "www-authenticate")
        );
    }

    #[test]
    fn every_reason_is_listed() {
        for failure in [
            Failure::Missing,
            Failure::Malformed(String::new()),
            Failure::Algorithm(String::new()),
            Failure::BadSignature,
            Failure::UnknownKid,
            Failure::Expired,
            Failure::NotYetValid("nbf"),
            Failure::Lifetime(String::new()),
            Failure::Issuer,
            Failure::Audience,
            Failure::NoKeys(String::new()),
            Failure::Denied,
        ] {
            assert!(Failure::REASONS.contains(&failure.reason()));
        }
    }
}
