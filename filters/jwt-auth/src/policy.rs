//! Evaluating a requirement tree (Envoy's `JwtRequirement` semantics) over per-provider
//! outcomes that are computed at most once per request.
//!
//! - `provider`: that provider's token must be present and valid;
//! - `anyOf`: the first satisfied alternative wins; when all fail, a real failure is reported
//!   in preference to "missing" (so `anyOf: [a, allowMissing]` with a forged token of `a`
//!   fails with `a`'s reason);
//! - `allOf`: every item;
//! - `allowMissing`: a request without any provider's token passes; otherwise some provider must
//!   accept its token;
//! - `allowMissingOrFailed`: always passes, and valid tokens still write their headers;
//! - `none`: public; `deny`: refused.

use crate::cache::Verified;
use crate::config::Requirement;
use crate::failure::Failure;

/// What one provider made of the request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// No token in its locations.
    Missing,
    /// A valid token.
    Valid(Verified),
    /// A token that failed.
    Invalid(Failure),
}

/// One request's evaluation: memoized provider outcomes.
pub struct Evaluation<'a> {
    memo: Vec<Option<Outcome>>,
    compute: &'a mut dyn FnMut(usize) -> Outcome,
}

impl<'a> Evaluation<'a> {
    /// An evaluation over `providers` providers whose outcomes `compute` produces.
    pub fn new(providers: usize, compute: &'a mut dyn FnMut(usize) -> Outcome) -> Self {
        Self {
            memo: vec![None; providers],
            compute,
        }
    }

    fn outcome(&mut self, provider: usize) -> Outcome {
        if let Some(Some(known)) = self.memo.get(provider) {
            return known.clone();
        }
        let outcome = (self.compute)(provider);
        if let Some(slot) = self.memo.get_mut(provider) {
            *slot = Some(outcome.clone());
        }
        outcome
    }

    /// Whether `requirement` is satisfied, and if not why.
    pub fn check(&mut self, requirement: &Requirement) -> Result<(), Failure> {
        match requirement {
            Requirement::Provider(index) => match self.outcome(*index) {
                Outcome::Valid(_) => Ok(()),
                Outcome::Missing => Err(Failure::Missing),
                Outcome::Invalid(failure) => Err(failure),
            },
            Requirement::AnyOf(items) => {
                let mut reported: Option<Failure> = None;
                for item in items {
                    match self.check(item) {
                        Ok(()) => return Ok(()),
                        Err(failure) => {
                            reported = match reported {
                                None | Some(Failure::Missing) => Some(failure),
                                kept => kept,
                            };
                        }
                    }
                }
                Err(reported.unwrap_or(Failure::Missing))
            }
            Requirement::AllOf(items) => items.iter().try_for_each(|item| self.check(item)),
            Requirement::AllowMissing => {
                let mut reported: Option<Failure> = None;
                let mut valid = false;
                for index in 0..self.memo.len() {
                    match self.outcome(index) {
                        Outcome::Valid(_) => valid = true,
                        Outcome::Missing => {}
                        Outcome::Invalid(failure) => {
                            // A foreign issuer only says "not this provider's token"; any other
                            // failure is more telling.
                            if reported.as_ref().is_none_or(|r| *r == Failure::Issuer) {
                                reported = Some(failure);
                            }
                        }
                    }
                }
                match reported {
                    Some(failure) if !valid => Err(failure),
                    _ => Ok(()),
                }
            }
            Requirement::AllowMissingOrFailed => {
                for index in 0..self.memo.len() {
                    self.outcome(index);
                }
                Ok(())
            }
            Requirement::None => Ok(()),
            Requirement::Deny => Err(Failure::Denied),
        }
    }

    /// The providers whose tokens were verified during the evaluation.
    pub fn valid(self) -> impl Iterator<Item = (usize, Verified)> {
        self.memo
            .into_iter()
            .enumerate()
            .filter_map(|(index, outcome)| match outcome {
                Some(Outcome::Valid(verified)) => Some((index, verified)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::claims::Times;

    fn valid() -> Outcome {
        Outcome::Valid(Verified {
            times: Times::default(),
            headers: Rc::from(Vec::new()),
            claims: Rc::default(),
            metadata: Option::None,
        })
    }

    fn run(requirement: &Requirement, outcomes: &[Outcome]) -> (Result<(), Failure>, Vec<usize>) {
        let outcomes = outcomes.to_vec();
        let mut calls = Vec::new();
        let mut compute = |index: usize| {
            calls.push(index);
            outcomes[index].clone()
        };
        let mut evaluation = Evaluation::new(outcomes.len(), &mut compute);
        let result = evaluation.check(requirement);
        drop(evaluation);
        (result, calls)
    }

    use Requirement::*;

    #[test]
    fn table() {
        let bad = || Outcome::Invalid(Failure::BadSignature);
        let foreign = || Outcome::Invalid(Failure::Issuer);
        let m = || Outcome::Missing;
        type Case = (&'static str, Requirement, Vec<Outcome>, Result<(), Failure>);
        let cases: Vec<Case> = vec![
            ("provider valid", Provider(0), vec![valid()], Ok(())),
            (
                "provider missing",
                Provider(0),
                vec![m()],
                Err(Failure::Missing),
            ),
            (
                "provider bad",
                Provider(0),
                vec![bad()],
                Err(Failure::BadSignature),
            ),
            (
                "any: second",
                AnyOf(vec![Provider(0), Provider(1)]),
                vec![m(), valid()],
                Ok(()),
            ),
            (
                "any: real failure beats missing",
                AnyOf(vec![Provider(0), Provider(1)]),
                vec![m(), bad()],
                Err(Failure::BadSignature),
            ),
            (
                "any: all missing",
                AnyOf(vec![Provider(0), Provider(1)]),
                vec![m(), m()],
                Err(Failure::Missing),
            ),
            (
                "any: optional auth, forged token fails",
                AnyOf(vec![Provider(0), AllowMissing]),
                vec![bad()],
                Err(Failure::BadSignature),
            ),
            (
                "any: optional auth, missing passes",
                AnyOf(vec![Provider(0), AllowMissing]),
                vec![m()],
                Ok(()),
            ),
            (
                "all: both",
                AllOf(vec![Provider(0), Provider(1)]),
                vec![valid(), valid()],
                Ok(()),
            ),
            (
                "all: one missing",
                AllOf(vec![Provider(0), Provider(1)]),
                vec![valid(), m()],
                Err(Failure::Missing),
            ),
            ("allowMissing: none", AllowMissing, vec![m(), m()], Ok(())),
            (
                "allowMissing: valid for one",
                AllowMissing,
                vec![valid(), foreign()],
                Ok(()),
            ),
            (
                "allowMissing: bad",
                AllowMissing,
                vec![foreign(), bad()],
                Err(Failure::BadSignature),
            ),
            (
                "allowMissing: foreign only",
                AllowMissing,
                vec![foreign(), m()],
                Err(Failure::Issuer),
            ),
            (
                "allowMissingOrFailed",
                AllowMissingOrFailed,
                vec![bad(), m()],
                Ok(()),
            ),
            ("none", None, vec![bad()], Ok(())),
            ("deny", Deny, vec![valid()], Err(Failure::Denied)),
        ];
        for (name, requirement, outcomes, expected) in cases {
            assert_eq!(run(&requirement, &outcomes).0, expected, "{name}");
        }
    }

    #[test]
    fn outcomes_are_computed_once_and_only_when_needed() {
        let (_, calls) = run(
            &AllOf(vec![Provider(0), Provider(0), Provider(0)]),
            &[valid(), valid()],
        );
        assert_eq!(calls, vec![0]);
        let (_, calls) = run(&None, &[valid()]);
        assert!(calls.is_empty());
        let (_, calls) = run(&AllowMissingOrFailed, &[valid(), valid()]);
        assert_eq!(calls, vec![0, 1]);
    }
}
