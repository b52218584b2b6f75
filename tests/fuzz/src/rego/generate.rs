//! Rego v0 programs from fuzz bytes: a small grammar of what Gatekeeper templates are made of
//! (rules, functions, partial sets, comprehensions, `some`, `not`, builtins, references into
//! `input.review.object` and `input.parameters`), laid out with the spacing, comments and
//! string contents that trip tokenizers (`#` and `(` inside strings, raw strings, comments
//! holding quotes), together with an object and parameters to evaluate it on.
//!
//! The generator records whether it wrote a construct the engine's rewrites target (a line
//! starting with `(`, chained rule bodies, `not f(<non-plain>)`, `sprintf` with a missing
//! argument, `any`/`all`): only programs without one are compared with raw regorus.

use arbitrary::Unstructured;
use serde_json::{Value as Json, json};

/// Every message a generated `violation` produces starts with this (run-time errors do not).
pub const MSG_PREFIX: &str = "fuzz:";

/// A generated program with its input.
#[derive(Debug, Clone)]
pub struct Program {
    /// The module (`package fuzz`).
    pub rego: String,
    /// The object under review.
    pub object: Json,
    /// The constraint's parameters.
    pub parameters: Json,
    /// Whether a construct the rewrites target was written.
    pub targeted: bool,
}

struct Gen<'a> {
    u: Unstructured<'a>,
    targeted: bool,
    /// Variables bound so far in the current body.
    vars: Vec<String>,
    /// Helper functions defined so far (one argument each).
    functions: Vec<String>,
    /// Helper rules defined so far (complete rules and partial sets).
    rules: Vec<String>,
    fresh: usize,
    depth: usize,
}

/// Generates a program from `data` (never fails: missing bytes read as zeros).
pub fn program(data: &[u8]) -> Program {
    let mut g = Gen {
        u: Unstructured::new(data),
        targeted: false,
        vars: Vec::new(),
        functions: Vec::new(),
        rules: Vec::new(),
        fresh: 0,
        depth: 0,
    };
    let object = g.object();
    let parameters = g.parameters();
    let mut rego = String::from("package fuzz\n\n");
    for index in 0..g.pick(4) {
        rego.push_str(&g.helper(index));
        rego.push('\n');
    }
    for _ in 0..=g.pick(2) {
        rego.push_str(&g.violation());
        rego.push('\n');
    }
    Program {
        rego,
        object,
        parameters,
        targeted: g.targeted,
    }
}

impl Gen<'_> {
    /// A number in `0..n` (0 when the input is used up).
    fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        self.u.int_in_range(0..=n - 1).unwrap_or(0)
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.pick(one_in) == 0 && !self.u.is_empty()
    }

    fn var(&mut self) -> String {
        self.fresh += 1;
        format!("v{}", self.fresh)
    }

    // === input ===

    fn object(&mut self) -> Json {
        let names = ["cart", "payment", "a b", "x#y", "", "ünï"];
        let images = [
            "registry.example.com/cart:1.2",
            "docker.io/evil:latest",
            "nginx",
            "a\"b",
        ];
        let mut containers = Vec::new();
        for _ in 0..self.pick(3) {
            let image = images[self.pick(images.len())];
            containers.push(json!({"name": names[self.pick(names.len())], "image": image}));
        }
        let mut labels = serde_json::Map::new();
        for _ in 0..self.pick(3) {
            let key = ["team", "app", "tier", "x"][self.pick(4)];
            labels.insert(key.into(), json!(names[self.pick(names.len())]));
        }
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": names[self.pick(names.len())], "namespace": "shop", "labels": labels},
            "spec": {
                "replicas": self.number(),
                "containers": containers,
                "x": self.json(2),
            }
        })
    }

    fn parameters(&mut self) -> Json {
        json!({"p": self.json(2), "list": [self.json(1), self.json(1)], "n": self.number()})
    }

    fn number(&mut self) -> Json {
        match self.pick(5) {
            0 => json!(self.pick(10)),
            1 => json!(-(self.pick(100) as i64)),
            2 => json!(1.5),
            3 => json!(1e21),
            _ => json!(9_007_199_254_740_993_u64),
        }
    }

    fn json(&mut self, depth: usize) -> Json {
        match self.pick(if depth == 0 { 4 } else { 6 }) {
            0 => Json::Null,
            1 => json!(self.chance(2)),
            2 => self.number(),
            3 => json!(["", "a", "#", "(", "\\", "\u{0}"][self.pick(6)]),
            4 => Json::Array((0..self.pick(3)).map(|_| self.json(depth - 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.pick(3) {
                    map.insert(["a", "b", "c"][self.pick(3)].into(), self.json(depth - 1));
                }
                Json::Object(map)
            }
        }
    }

    // === declarations ===

    fn helper(&mut self, index: usize) -> String {
        self.vars.clear();
        match self.pick(5) {
            0 => {
                let name = format!("r{index}");
                let value = self.term();
                let body = self.body();
                let mut rule = format!("{name} = {value} {{\n{body}\n}}");
                if self.chance(6) {
                    // Chained bodies: OPA reads `{a} {b}` as two rules with one head.
                    self.targeted = true;
                    let second = self.body();
                    rule.push_str(&format!(" {{\n{second}\n}}"));
                }
                if self.chance(4) {
                    rule = format!("default {name} = {}\n{rule}", self.literal_value());
                }
                self.rules.push(name);
                rule
            }
            1 => {
                let name = format!("s{index}");
                let x = self.var();
                let collection = self.collection();
                self.vars.push(x.clone());
                let body = self.body();
                self.rules.push(format!("{name}[_]"));
                format!("{name}[{x}] {{\n  {x} := {collection}[_]\n{body}\n}}")
            }
            2 => {
                let name = format!("f{index}");
                let arg = self.var();
                self.vars.push(arg.clone());
                let result = self.term();
                let body = self.body();
                self.functions.push(name.clone());
                format!("{name}({arg}) = {result} {{\n{body}\n}}")
            }
            3 => {
                // A lookup table (the VM turns it into one object lookup).
                let name = format!("t{index}");
                self.functions.push(name.clone());
                let mut clauses = String::new();
                for key in ["Ki", "Mi", "m", ""].iter().take(1 + self.pick(4)) {
                    clauses.push_str(&format!("{name}(\"{key}\") = {}\n", self.pick(2000)));
                }
                clauses
            }
            _ => {
                // Two definitions of one complete rule (OPA: a conflict when both hold with
                // different values).
                let name = format!("c{index}");
                let first = self.literal_value();
                let second = self.literal_value();
                let (a, b) = (self.body(), self.body());
                self.rules.push(name.clone());
                format!("{name} = {first} {{\n{a}\n}}\n{name} = {second} {{\n{b}\n}}")
            }
        }
    }

    fn violation(&mut self) -> String {
        self.vars.clear();
        let body = self.body();
        let value = self.var();
        let term = self.term();
        let details = if self.chance(3) {
            format!(", \"details\": {{\"v\": {value}}}")
        } else {
            String::new()
        };
        format!(
            "violation[{{\"msg\": msg{details}}}] {{\n{body}\n  {value} := {term}\n  msg := sprintf(\"{MSG_PREFIX}%v\", [{value}])\n}}"
        )
    }

    // === bodies ===

    fn body(&mut self) -> String {
        let count = 1 + self.pick(4);
        let mut lines = Vec::new();
        for _ in 0..count {
            lines.push(format!("  {}", self.literal()));
        }
        let mut out = String::new();
        for (index, line) in lines.iter().enumerate() {
            if index > 0 {
                out.push_str(self.separator());
            }
            out.push_str(line);
        }
        out
    }

    fn separator(&mut self) -> &'static str {
        match self.pick(6) {
            0 => "; ",
            1 => "  # \"quoted\" (paren) in a comment\n",
            2 => "\n\n",
            _ => "\n",
        }
    }

    fn literal(&mut self) -> String {
        match self.pick(12) {
            0 | 1 => {
                let (a, b) = (self.term(), self.term());
                format!("{a} {} {b}", ["==", "!=", "<", ">=", "="][self.pick(5)])
            }
            2 | 3 => {
                let x = self.var();
                let value = self.term();
                self.vars.push(x.clone());
                format!("{x} := {value}")
            }
            4 => {
                let k = self.var();
                let collection = self.collection();
                let value = self.term();
                self.vars.push(k.clone());
                format!("some {k}\n  {collection}[{k}] == {value}")
            }
            5 => {
                let operand = self.negatable();
                format!("not {operand}")
            }
            6 => {
                let collection = self.collection();
                format!(
                    "count({collection}) {} {}",
                    [">", "==", "<="][self.pick(3)],
                    self.pick(3)
                )
            }
            7 => {
                let s = self.string_term();
                let fname = ["startswith", "endswith", "contains"][self.pick(3)];
                format!("{fname}({s}, {})", self.string_literal())
            }
            8 => {
                // A line starting with `(`: OPA ends the previous expression at the newline.
                let x = self.var();
                self.vars.push(x.clone());
                let value = self.term();
                if self.chance(2) {
                    self.targeted = true;
                    format!("{x} := {value}\n  ({x} == {x})")
                } else {
                    format!("{x} := ({value})")
                }
            }
            9 => {
                let terms = (0..1 + self.pick(3))
                    .map(|_| self.term())
                    .collect::<Vec<_>>()
                    .join(", ");
                if self.chance(3) {
                    // OPA's deprecated builtins, which regorus lacks.
                    self.targeted = true;
                    format!("{}([{terms}])", ["any", "all"][self.pick(2)])
                } else {
                    format!("is_array([{terms}])")
                }
            }
            10 => {
                let x = self.var();
                let format = ["%v", "%v-%v", "%d", "%s %v"][self.pick(4)];
                let verbs = format.matches('%').count();
                let mut args = (0..verbs).map(|_| self.term()).collect::<Vec<_>>();
                if self.chance(3) {
                    // Fewer arguments than verbs: OPA prints %!v(MISSING).
                    self.targeted = true;
                    args.pop();
                }
                self.vars.push(x.clone());
                format!("{x} := sprintf(\"{format}\", [{}])", args.join(", "))
            }
            _ => {
                let x = self.var();
                let collection = self.collection();
                let y = self.var();
                self.vars.push(x.clone());
                format!("{x} := [{y} | {y} := {collection}[_]; {y} != null]")
            }
        }
    }

    /// What follows `not`: a rule, a comparison, or a call (with a non-plain argument, the
    /// construct the third rewrite targets).
    fn negatable(&mut self) -> String {
        match self.pick(3) {
            0 if !self.rules.is_empty() => {
                let at = self.pick(self.rules.len());
                self.rules[at].clone()
            }
            1 if !self.functions.is_empty() => {
                let function = {
                    let at = self.pick(self.functions.len());
                    self.functions[at].clone()
                };
                let arg = self.term();
                let plain = arg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || arg.starts_with('"') && !arg.contains('\\');
                if !plain {
                    self.targeted = true;
                }
                format!("{function}({arg})")
            }
            _ => {
                let (a, b) = (self.term(), self.term());
                format!("{a} == {b}")
            }
        }
    }

    // === terms ===

    fn term(&mut self) -> String {
        if self.depth > 3 {
            return self.literal_value();
        }
        self.depth += 1;
        let term = match self.pick(10) {
            0 | 1 => self.reference(),
            2 => self.literal_value(),
            3 if !self.vars.is_empty() => {
                let at = self.pick(self.vars.len());
                self.vars[at].clone()
            }
            4 if !self.functions.is_empty() => {
                let function = {
                    let at = self.pick(self.functions.len());
                    self.functions[at].clone()
                };
                let arg = self.term();
                format!("{function}({arg})")
            }
            5 if !self.rules.is_empty() => {
                let at = self.pick(self.rules.len());
                self.rules[at].clone()
            }
            6 => {
                let (a, b) = (self.term(), self.term());
                format!("{a} {} {b}", ["+", "-", "*"][self.pick(3)])
            }
            7 => {
                let s = self.string_term();
                format!(
                    "{}({s})",
                    ["lower", "upper", "trim_space", "count"][self.pick(4)]
                )
            }
            8 => {
                let parts = (0..self.pick(3)).map(|_| self.term()).collect::<Vec<_>>();
                format!("concat(\",\", [{}])", parts.join(", "))
            }
            _ => self.collection(),
        };
        self.depth -= 1;
        term
    }

    fn reference(&mut self) -> String {
        [
            "input.review.object.metadata.name",
            "input.review.object.metadata.labels.team",
            "input.review.object.metadata.labels[\"app\"]",
            "input.review.object.spec.replicas",
            "input.review.object.spec.containers[_].image",
            "input.review.object.spec.x",
            "input.review.object.spec.x.a",
            "input.review.operation",
            "input.parameters.p",
            "input.parameters.n",
            "input.parameters.list[0]",
        ][self.pick(11)]
        .to_string()
    }

    fn collection(&mut self) -> String {
        match self.pick(6) {
            0 => "input.review.object.spec.containers".into(),
            1 => "input.parameters.list".into(),
            2 => "input.review.object.metadata.labels".into(),
            3 => {
                let items = (0..self.pick(3))
                    .map(|_| self.literal_value())
                    .collect::<Vec<_>>();
                format!("[{}]", items.join(", "))
            }
            4 => {
                let items = (0..1 + self.pick(2))
                    .map(|_| self.literal_value())
                    .collect::<Vec<_>>();
                format!("{{{}}}", items.join(", "))
            }
            _ => "input.review.object.spec.x".into(),
        }
    }

    fn string_term(&mut self) -> String {
        match self.pick(3) {
            0 => "input.review.object.metadata.name".into(),
            1 => "input.review.object.spec.containers[_].image".into(),
            _ => self.string_literal(),
        }
    }

    fn literal_value(&mut self) -> String {
        match self.pick(6) {
            0 => self.pick(100).to_string(),
            1 => ["true", "false", "null"][self.pick(3)].into(),
            2 => "-1.5".into(),
            _ => self.string_literal(),
        }
    }

    fn string_literal(&mut self) -> String {
        [
            "\"\"",
            "\"cart\"",
            "\"registry.example.com/\"",
            "\"# not a comment\"",
            "\"not f(x.y)\"",
            "\"a\\\"b\"",
            "\"{ }\"",
            "`raw \"quoted\" # (paren)`",
            "\"\\u00e9\"",
            "\"any(all)\"",
            "\":=\"",
        ][self.pick(11)]
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_deterministic_and_parse() {
        for seed in 0u8..64 {
            let data: Vec<u8> = (0..256)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect();
            let a = program(&data);
            assert_eq!(a.rego, program(&data).rego);
            assert!(a.rego.starts_with("package fuzz"), "{}", a.rego);
            assert!(a.rego.contains("violation["), "{}", a.rego);
        }
    }
}
