//! The parse-tree analysis behind [`super::ReadSet`]: an abstract interpretation of a template's
//! modules (as compiled, after the rewrites) in which every value is the set of `input` paths it
//! comes from, and every use of a value records how much of those paths the decision needs
//! (value, type or shape, see the parent module).
//!
//! - A value is *exactly* the input at a path (`input.review.object`, a local bound to it, a
//!   function parameter given it, a complete rule or function returning it) or lies *within* a
//!   path (an element of an iterated collection, a literal or comprehension built from it, a
//!   formatted message). Refining an exact value (`.spec`, `["spec"]`, a key known to be one of
//!   a few strings) refines its path; refining a value within a path stays within that path.
//! - Functions are analysed per call with the arguments' paths (so `is_update(input.review)`
//!   reads `input.review.operation`, not the review), rules once; rules and functions of other
//!   packages (libs) are found by path, through imports and `data.` references.
//! - Statements of a body are analysed until the locals' paths settle (Rego orders a body by
//!   data flow, not by text); `x = y` binds when one side is a local not yet bound.
//!
//! Whatever the model does not cover (a `with` modifier, a computed reference into `data`, a
//! reference to a whole package, recursion) fails the analysis, and the caller falls back to the
//! coarse text scan: an imprecise key costs cache hits, an unsound one would cost decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regorus::unstable::{AssignOp, Expr, Literal, Module, Query, Ref, Rule, RuleHead};

use super::{NONDETERMINISTIC, Path};

/// Builtins that only format their arguments into text (what messages are made of): whether
/// they are defined depends on the arguments' types, not on their contents.
const FORMATTING: &[&str] = &[
    "sprintf",
    "concat",
    "upper",
    "lower",
    "trim_space",
    "json.marshal",
];

/// Expressions analysed before the analysis gives up (templates take a few thousand).
const BUDGET: usize = 200_000;

/// The reads found.
#[derive(Debug, Default)]
pub(super) struct Reads {
    pub value: BTreeSet<Path>,
    pub types: BTreeSet<Path>,
    pub shapes: BTreeSet<Path>,
    pub impure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Origin {
    /// The value is the input at this path.
    Exact(Path),
    /// The value lies within (or is built from) the input at this path.
    Within(Path),
}

impl Origin {
    fn path(&self) -> &Path {
        match self {
            Origin::Exact(path) | Origin::Within(path) => path,
        }
    }
}

/// An abstract value: where it comes from, the strings it can only be (for keys), and for a
/// literal collection of strings, the strings its elements can only be.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Abs {
    origins: BTreeSet<Origin>,
    consts: Option<BTreeSet<String>>,
    items: Option<BTreeSet<String>>,
}

impl Abs {
    fn exact(path: Path) -> Self {
        Self {
            origins: BTreeSet::from([Origin::Exact(path)]),
            consts: None,
            items: None,
        }
    }

    fn constant(text: &str) -> Self {
        Self {
            origins: BTreeSet::new(),
            consts: Some(BTreeSet::from([text.to_string()])),
            items: None,
        }
    }

    /// The union of two values (either may be the one).
    fn union(mut self, other: Abs) -> Abs {
        let both = |a: Option<BTreeSet<String>>, b: Option<BTreeSet<String>>| match (a, b) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        self.origins.extend(other.origins);
        self.consts = both(self.consts, other.consts);
        self.items = both(self.items, other.items);
        self
    }

    /// A value built from this one (an element, a literal holding it, a formatted string).
    fn within(&self) -> Abs {
        Abs {
            origins: self
                .origins
                .iter()
                .map(|o| Origin::Within(o.path().clone()))
                .collect(),
            consts: None,
            items: None,
        }
    }

    /// An element of this collection.
    fn element(&self) -> Abs {
        Abs {
            consts: self.items.clone(),
            ..self.within()
        }
    }

    /// `.field` / `["field"]`.
    fn refine(&self, field: &str) -> Abs {
        Abs {
            origins: self
                .origins
                .iter()
                .map(|origin| match origin {
                    Origin::Exact(path) => {
                        let mut path = path.clone();
                        path.push(field.to_string());
                        Origin::Exact(path)
                    }
                    within => within.clone(),
                })
                .collect(),
            consts: None,
            items: None,
        }
    }
}

struct ModuleInfo {
    /// `data.pkg`.
    package: String,
    /// Import alias -> imported path (`data.lib.x.f`, `input.review`).
    imports: HashMap<String, String>,
}

/// One definition of a rule or function.
struct Def<'m> {
    module: usize,
    rule: &'m Rule,
}

/// A binding decision for a `x = y` statement, made once per statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unify {
    BindLeft,
    BindRight,
    Compare,
}

#[derive(Clone, Default, PartialEq)]
struct Scope {
    vars: HashMap<String, Abs>,
}

struct Analyzer<'m> {
    modules: Vec<ModuleInfo>,
    defs: HashMap<String, Vec<Def<'m>>>,
    reads: Reads,
    rule_memo: HashMap<String, Option<Abs>>,
    fn_memo: BTreeMap<(String, Vec<Abs>), Option<Abs>>,
    steps: usize,
}

type Outcome<T> = Result<T, String>;

/// Analyses the modules for the rule `entry` (`data.pkg.violation`).
pub(super) fn analyse(modules: &[Ref<Module>], entry: &str) -> Outcome<Reads> {
    let mut analyzer = Analyzer {
        modules: Vec::new(),
        defs: HashMap::new(),
        reads: Reads::default(),
        rule_memo: HashMap::new(),
        fn_memo: BTreeMap::new(),
        steps: 0,
    };
    for (index, module) in modules.iter().enumerate() {
        let package = format!("data.{}", module.package.refr.span().text());
        let mut imports = HashMap::new();
        for import in &module.imports {
            let path = import.refr.span().text().to_string();
            if !(path.starts_with("data.") || path == "input" || path.starts_with("input.")) {
                continue;
            }
            let alias = match &import.r#as {
                Some(alias) => alias.text().to_string(),
                None => path.rsplit('.').next().unwrap_or_default().to_string(),
            };
            imports.insert(alias, path);
        }
        analyzer.modules.push(ModuleInfo { package, imports });
        for rule in &module.policy {
            let name = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => head_name(refr)?.0,
                },
                Rule::Default { refr, .. } => head_name(refr)?.0,
            };
            let path = format!("{}.{name}", analyzer.modules[index].package);
            analyzer.defs.entry(path).or_default().push(Def {
                module: index,
                rule: rule.as_ref(),
            });
        }
    }
    let output = analyzer.rule_value(entry, true)?;
    analyzer.shape(&output);
    Ok(analyzer.reads)
}

/// The name a rule head defines, and the key expression of an object rule (`p[k] = v`).
fn head_name(refr: &Ref<Expr>) -> Outcome<(String, Option<&Ref<Expr>>)> {
    match refr.as_ref() {
        Expr::Var { span, .. } => Ok((span.text().to_string(), None)),
        Expr::RefBrack { refr, index, .. } => match refr.as_ref() {
            Expr::Var { span, .. } => Ok((span.text().to_string(), Some(index))),
            _ => Err("a rule head with a computed reference".into()),
        },
        Expr::RefDot { span, .. } if !span.text().contains('[') => {
            Ok((span.text().to_string(), None))
        }
        _ => Err("a rule head this analysis does not model".into()),
    }
}

/// A reference split into its base and its segments.
enum Segment<'e> {
    Field(String),
    Index(&'e Ref<Expr>),
}

fn flatten(expr: &Ref<Expr>) -> (&Ref<Expr>, Vec<Segment<'_>>) {
    let mut segments = Vec::new();
    let mut at = expr;
    loop {
        match at.as_ref() {
            Expr::RefDot { refr, field, .. } => {
                segments.push(Segment::Field(field.0.text().to_string()));
                at = refr;
            }
            Expr::RefBrack { refr, index, .. } => {
                segments.push(match string_literal(index) {
                    Some(text) => Segment::Field(text),
                    None => Segment::Index(index),
                });
                at = refr;
            }
            _ => break,
        }
    }
    segments.reverse();
    (at, segments)
}

fn string_literal(expr: &Ref<Expr>) -> Option<String> {
    match expr.as_ref() {
        Expr::String { value, .. } | Expr::RawString { value, .. } => {
            value.as_string().ok().map(|s| s.to_string())
        }
        _ => None,
    }
}

fn var_name(expr: &Ref<Expr>) -> Option<&str> {
    match expr.as_ref() {
        Expr::Var { span, .. } => Some(span.text()),
        _ => None,
    }
}

/// The dotted name of a call's function (`object.get`, `lib.f`), when it is static.
fn call_name(fcn: &Ref<Expr>) -> Option<String> {
    let (base, segments) = flatten(fcn);
    let mut name = var_name(base)?.to_string();
    for segment in segments {
        match segment {
            Segment::Field(field) => {
                name.push('.');
                name.push_str(&field);
            }
            Segment::Index(_) => return None,
        }
    }
    Some(name)
}

/// What a name refers to outside the locals.
enum Resolved {
    Input(Path),
    Data(String),
    Unknown,
}

impl<'m> Analyzer<'m> {
    fn tick(&mut self) -> Outcome<()> {
        self.steps += 1;
        if self.steps > BUDGET {
            return Err("the template is too large to analyse".into());
        }
        Ok(())
    }

    // === reads ===

    fn value(&mut self, abs: &Abs) {
        for origin in &abs.origins {
            self.reads.value.insert(origin.path().clone());
        }
    }

    /// Binding, `object.get` and call arguments: only definedness and type of exact values.
    fn types(&mut self, abs: &Abs) {
        for origin in &abs.origins {
            if let Origin::Exact(path) = origin {
                self.reads.types.insert(path.clone());
            }
        }
    }

    fn shape(&mut self, abs: &Abs) {
        for origin in &abs.origins {
            self.reads.shapes.insert(origin.path().clone());
        }
    }

    // === names ===

    /// Resolves a dotted name (`is_exempt`, `lib.x.f`, `data.lib.x.f`, `input.review`) in a
    /// module, outside the locals.
    fn resolve(&self, module: usize, name: &str) -> Resolved {
        let (first, rest) = match name.split_once('.') {
            Some((first, rest)) => (first, Some(rest)),
            None => (name, None),
        };
        let join = |base: &str| match rest {
            Some(rest) => format!("{base}.{rest}"),
            None => base.to_string(),
        };
        if first == "input" {
            return Resolved::Input(
                rest.map(|r| r.split('.').map(String::from).collect())
                    .unwrap_or_default(),
            );
        }
        if first == "data" {
            return Resolved::Data(join("data"));
        }
        let Some(info) = self.modules.get(module) else {
            return Resolved::Unknown;
        };
        if let Some(imported) = info.imports.get(first) {
            let full = join(imported);
            return match full.strip_prefix("input") {
                Some(rest) => Resolved::Input(
                    rest.split('.')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                ),
                None => Resolved::Data(full),
            };
        }
        let local = format!("{}.{first}", info.package);
        if self.defs.contains_key(&local) {
            return Resolved::Data(join(&local));
        }
        Resolved::Unknown
    }

    // === rules and functions ===

    /// The value of a rule (not a function), analysing its bodies once. `output` marks the
    /// entry rule, whose head terms are the decision's output.
    fn rule_value(&mut self, path: &str, output: bool) -> Outcome<Abs> {
        match self.rule_memo.get(path) {
            Some(Some(value)) => return Ok(value.clone()),
            Some(None) => return Err(format!("a recursive reference to {path}")),
            None => {}
        }
        self.rule_memo.insert(path.to_string(), None);
        let defs: Vec<(usize, &'m Rule)> = self
            .defs
            .get(path)
            .map(|defs| defs.iter().map(|d| (d.module, d.rule)).collect())
            .unwrap_or_default();
        let mut total = Abs::default();
        for (module, rule) in defs {
            let value = match rule {
                Rule::Default { value, .. } => self.expr(module, value, &mut Scope::default())?,
                Rule::Spec { head, bodies, .. } => match head {
                    RuleHead::Func { .. } => {
                        return Err(format!("the function {path} is referenced without a call"));
                    }
                    RuleHead::Set { key, .. } => {
                        let mut value = Abs::default();
                        for body in bodies {
                            let mut scope = Scope::default();
                            self.query(module, &body.query, &mut scope)?;
                            if let Some(key) = key {
                                value = value.union(self.expr(module, key, &mut scope)?);
                            }
                        }
                        if bodies.is_empty()
                            && let Some(key) = key
                        {
                            value = self.expr(module, key, &mut Scope::default())?;
                        }
                        if output { value } else { value.within() }
                    }
                    RuleHead::Compr { refr, assign, .. } => {
                        let (_, key) = head_name(refr)?;
                        let mut value = Abs::default();
                        let mut scopes = Vec::new();
                        for body in bodies {
                            let mut scope = Scope::default();
                            self.query(module, &body.query, &mut scope)?;
                            scopes.push((scope, body.assign.as_ref().or(assign.as_ref())));
                        }
                        if bodies.is_empty() {
                            scopes.push((Scope::default(), assign.as_ref()));
                        }
                        for (mut scope, assign) in scopes {
                            if let Some(assign) = assign {
                                value =
                                    value.union(self.expr(module, &assign.value, &mut scope)?);
                            }
                            if let Some(key) = key {
                                value = value.union(self.expr(module, key, &mut scope)?.within());
                            }
                        }
                        // An object rule's value is built from its entries.
                        if key.is_some() && !output {
                            value.within()
                        } else {
                            value
                        }
                    }
                },
            };
            total = total.union(value);
        }
        self.rule_memo.insert(path.to_string(), Some(total.clone()));
        Ok(total)
    }

    /// The value of a call of the function at `path` with arguments of the given values.
    fn call_function(&mut self, path: &str, args: Vec<Abs>) -> Outcome<Abs> {
        let key = (path.to_string(), args.clone());
        match self.fn_memo.get(&key) {
            Some(Some(value)) => return Ok(value.clone()),
            Some(None) => return Err(format!("a recursive call of {path}")),
            None => {}
        }
        self.fn_memo.insert(key.clone(), None);
        let defs: Vec<(usize, &'m Rule)> = self
            .defs
            .get(path)
            .map(|defs| defs.iter().map(|d| (d.module, d.rule)).collect())
            .unwrap_or_default();
        let mut total = Abs::default();
        for (module, rule) in defs {
            match rule {
                Rule::Default { value, .. } => {
                    total = total.union(self.expr(module, value, &mut Scope::default())?);
                }
                Rule::Spec {
                    head:
                        RuleHead::Func {
                            args: params,
                            assign,
                            ..
                        },
                    bodies,
                    ..
                } => {
                    let bodies: Vec<_> = if bodies.is_empty() {
                        vec![None]
                    } else {
                        bodies.iter().map(Some).collect()
                    };
                    for body in bodies {
                        let mut scope = Scope::default();
                        for (param, arg) in params.iter().zip(args.iter()) {
                            self.bind(module, param, arg, &mut scope)?;
                        }
                        if let Some(body) = body {
                            self.query(module, &body.query, &mut scope)?;
                        }
                        let assign = body.and_then(|b| b.assign.as_ref()).or(assign.as_ref());
                        if let Some(assign) = assign {
                            total = total.union(self.expr(module, &assign.value, &mut scope)?);
                        }
                    }
                }
                Rule::Spec { .. } => return Err(format!("{path} is called but is not a function")),
            }
        }
        self.fn_memo.insert(key, Some(total.clone()));
        Ok(total)
    }

    // === bodies ===

    fn query(&mut self, module: usize, query: &Query, scope: &mut Scope) -> Outcome<()> {
        let mut decisions: Vec<Option<Unify>> = vec![None; query.stmts.len()];
        for _ in 0..6 {
            let before = scope.clone();
            for (stmt, decision) in query.stmts.iter().zip(decisions.iter_mut()) {
                if !stmt.with_mods.is_empty() {
                    return Err(format!("a `with` modifier (line {})", stmt.span.line));
                }
                self.literal(module, &stmt.literal, scope, decision)?;
            }
            if *scope == before {
                return Ok(());
            }
        }
        Err("the bindings of a body did not settle".into())
    }

    fn literal(
        &mut self,
        module: usize,
        literal: &Literal,
        scope: &mut Scope,
        decision: &mut Option<Unify>,
    ) -> Outcome<()> {
        self.tick()?;
        match literal {
            Literal::SomeVars { .. } => Ok(()),
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                let collection = self.expr(module, collection, scope)?;
                self.value(&collection);
                let element = collection.element();
                if let Some(key) = key {
                    self.bind(module, key, &element, scope)?;
                }
                self.bind(module, value, &element, scope)
            }
            Literal::Expr { expr, .. } => self.statement(module, expr, scope, decision),
            Literal::NotExpr { expr, .. } => {
                let mut inner = scope.clone();
                let value = self.expr(module, expr, &mut inner)?;
                self.value(&value);
                Ok(())
            }
            Literal::Every {
                key,
                value,
                domain,
                query,
                ..
            } => {
                let domain = self.expr(module, domain, scope)?;
                self.value(&domain);
                let mut inner = scope.clone();
                for var in key.iter().chain(std::iter::once(value)) {
                    inner.vars.insert(var.text().to_string(), domain.within());
                }
                self.query(module, query, &mut inner)
            }
        }
    }

    /// One expression statement: an assignment or unification binds or compares; anything else
    /// is a condition on its value.
    fn statement(
        &mut self,
        module: usize,
        expr: &Ref<Expr>,
        scope: &mut Scope,
        decision: &mut Option<Unify>,
    ) -> Outcome<()> {
        let Expr::AssignExpr { op, lhs, rhs, .. } = expr.as_ref() else {
            let value = self.expr(module, expr, scope)?;
            self.value(&value);
            return Ok(());
        };
        let unify = match (op, *decision) {
            (AssignOp::ColEq, _) => Unify::BindLeft,
            (AssignOp::Eq, Some(made)) => made,
            (AssignOp::Eq, None) => {
                let made = if self.unbound(module, lhs, scope) {
                    Unify::BindLeft
                } else if self.unbound(module, rhs, scope) {
                    Unify::BindRight
                } else {
                    Unify::Compare
                };
                *decision = Some(made);
                made
            }
        };
        match unify {
            Unify::BindLeft => {
                let value = self.expr(module, rhs, scope)?;
                self.bind(module, lhs, &value, scope)
            }
            Unify::BindRight => {
                let value = self.expr(module, lhs, scope)?;
                self.bind(module, rhs, &value, scope)
            }
            Unify::Compare => {
                let left = self.expr(module, lhs, scope)?;
                let right = self.expr(module, rhs, scope)?;
                self.value(&left);
                self.value(&right);
                Ok(())
            }
        }
    }

    /// Whether an expression is a pattern with a local not yet bound (so unifying binds it).
    fn unbound(&self, module: usize, expr: &Ref<Expr>, scope: &Scope) -> bool {
        match expr.as_ref() {
            Expr::Var { span, .. } => {
                let name = span.text();
                name == "_"
                    || (!scope.vars.contains_key(name)
                        && matches!(self.resolve(module, name), Resolved::Unknown))
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                items.iter().any(|item| self.unbound(module, item, scope))
            }
            Expr::Object { fields, .. } => fields
                .iter()
                .any(|(_, _, value)| self.unbound(module, value, scope)),
            _ => false,
        }
    }

    /// Binds a pattern to a value: a local takes the value (only its definedness and type are
    /// read); a composite pattern also compares the value's structure.
    fn bind(
        &mut self,
        module: usize,
        pattern: &Ref<Expr>,
        value: &Abs,
        scope: &mut Scope,
    ) -> Outcome<()> {
        self.tick()?;
        match pattern.as_ref() {
            Expr::Var { span, .. } => {
                self.types(value);
                let name = span.text();
                if name != "_" {
                    let merged = match scope.vars.remove(name) {
                        Some(existing) => existing.union(value.clone()),
                        None => value.clone(),
                    };
                    scope.vars.insert(name.to_string(), merged);
                }
                Ok(())
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                self.value(value);
                for item in items {
                    self.bind(module, item, &value.within(), scope)?;
                }
                Ok(())
            }
            Expr::Object { fields, .. } => {
                self.value(value);
                for (_, key, field) in fields {
                    let key = self.expr(module, key, scope)?;
                    self.value(&key);
                    self.bind(module, field, &value.within(), scope)?;
                }
                Ok(())
            }
            _ => {
                // A literal or a reference in a pattern: a comparison.
                let other = self.expr(module, pattern, scope)?;
                self.value(&other);
                self.value(value);
                Ok(())
            }
        }
    }

    // === expressions ===

    fn expr(&mut self, module: usize, expr: &Ref<Expr>, scope: &mut Scope) -> Outcome<Abs> {
        self.tick()?;
        match expr.as_ref() {
            Expr::String { value, .. } | Expr::RawString { value, .. } => Ok(value
                .as_string()
                .map(|s| Abs::constant(s))
                .unwrap_or_default()),
            Expr::Number { .. } | Expr::Bool { .. } | Expr::Null { .. } => Ok(Abs::default()),
            Expr::Var { .. } | Expr::RefDot { .. } | Expr::RefBrack { .. } => {
                self.reference(module, expr, scope)
            }
            Expr::Array { items, .. } | Expr::Set { items, .. } => {
                let mut value = Abs::default();
                let mut strings = Some(BTreeSet::new());
                for item in items {
                    let item = self.expr(module, item, scope)?;
                    self.types(&item);
                    strings = match (strings, item.consts.as_ref()) {
                        (Some(mut all), Some(consts)) if item.origins.is_empty() => {
                            all.extend(consts.iter().cloned());
                            Some(all)
                        }
                        _ => None,
                    };
                    value = value.union(item.within());
                }
                Ok(Abs {
                    items: strings,
                    ..value.within()
                })
            }
            Expr::Object { fields, .. } => {
                let mut value = Abs::default();
                for (_, key, field) in fields {
                    let key = self.expr(module, key, scope)?;
                    self.value(&key);
                    let field = self.expr(module, field, scope)?;
                    self.types(&field);
                    value = value.union(field.within());
                }
                Ok(value.within())
            }
            Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                let mut inner = scope.clone();
                self.query(module, query, &mut inner)?;
                Ok(self.expr(module, term, &mut inner)?.within())
            }
            Expr::ObjectCompr {
                key, value, query, ..
            } => {
                let mut inner = scope.clone();
                self.query(module, query, &mut inner)?;
                let key = self.expr(module, key, &mut inner)?;
                self.value(&key);
                Ok(self.expr(module, value, &mut inner)?.within())
            }
            Expr::Call { fcn, params, .. } => self.call(module, fcn, params, scope),
            Expr::UnaryExpr { expr, .. } => {
                let value = self.expr(module, expr, scope)?;
                self.value(&value);
                Ok(Abs::default())
            }
            Expr::BinExpr { lhs, rhs, .. }
            | Expr::BoolExpr { lhs, rhs, .. }
            | Expr::ArithExpr { lhs, rhs, .. } => {
                let left = self.expr(module, lhs, scope)?;
                let right = self.expr(module, rhs, scope)?;
                self.value(&left);
                self.value(&right);
                Ok(Abs::default())
            }
            Expr::Membership {
                key,
                value,
                collection,
                ..
            } => {
                for part in key.iter().chain([value, collection]) {
                    let part = self.expr(module, part, scope)?;
                    self.value(&part);
                }
                Ok(Abs::default())
            }
            Expr::AssignExpr { .. } => Err("an assignment inside an expression".into()),
            #[allow(unreachable_patterns, reason = "regorus' optional `rego-extensions`")]
            _ => Err("an expression this analysis does not model".into()),
        }
    }

    fn call(
        &mut self,
        module: usize,
        fcn: &Ref<Expr>,
        params: &[Ref<Expr>],
        scope: &mut Scope,
    ) -> Outcome<Abs> {
        let name = call_name(fcn).ok_or("a call of a computed function")?;
        let mut args = Vec::with_capacity(params.len());
        for param in params {
            args.push(self.expr(module, param, scope)?);
        }
        if let Resolved::Data(path) = self.resolve(module, &name)
            && self.defs.contains_key(&path)
        {
            for arg in &args {
                self.types(arg);
            }
            return self.call_function(&path, args);
        }
        if self.reads.impure.is_none()
            && let Some(builtin) = NONDETERMINISTIC.iter().find(|b| **b == name)
        {
            self.reads.impure = Some(format!("calls {builtin} (line {})", fcn.span().line));
        }
        match name.as_str() {
            "print" => Ok(Abs::default()),
            "object.get" if args.len() == 3 => {
                let (object, key, default) = (&args[0], &args[1], &args[2]);
                self.types(object);
                let keys: Option<Vec<String>> = match params.get(1).map(|p| p.as_ref()) {
                    Some(Expr::Array { items, .. }) => items.iter().map(string_literal).collect(),
                    _ => key
                        .consts
                        .as_ref()
                        .filter(|_| key.origins.is_empty())
                        .map(|c| c.iter().cloned().collect()),
                };
                let refined = match (keys, params.get(1).map(|p| p.as_ref())) {
                    // A path: `object.get(x, ["a", "b"], d)`.
                    (Some(path), Some(Expr::Array { .. })) => path
                        .iter()
                        .fold(object.clone(), |at, field| at.refine(field)),
                    (Some(fields), _) => fields
                        .iter()
                        .fold(Abs::default(), |acc, field| acc.union(object.refine(field))),
                    (None, _) => {
                        self.value(object);
                        self.value(key);
                        object.within()
                    }
                };
                Ok(refined.union(default.clone()))
            }
            formatting if FORMATTING.contains(&formatting) => {
                let mut value = Abs::default();
                for arg in &args {
                    self.shape(arg);
                    value = value.union(arg.within());
                }
                Ok(value)
            }
            _ => {
                // Any other builtin: a function of its arguments' values.
                for arg in &args {
                    self.value(arg);
                }
                Ok(Abs::default())
            }
        }
    }

    /// A reference: a local, `input`, a rule (here or in a lib), or `data.inventory`, with its
    /// segments applied.
    fn reference(&mut self, module: usize, expr: &Ref<Expr>, scope: &mut Scope) -> Outcome<Abs> {
        let (base, segments) = flatten(expr);
        let Some(name) = var_name(base) else {
            // `split(x, ":")[1]`, `{..}[k]`: the segments apply to the computed value.
            let value = self.expr(module, base, scope)?;
            return self.apply(module, value, &segments, scope);
        };
        if let Some(local) = scope.vars.get(name) {
            let local = local.clone();
            return self.apply(module, local, &segments, scope);
        }
        match self.resolve(module, name) {
            Resolved::Input(path) => self.apply(module, Abs::exact(path), &segments, scope),
            Resolved::Data(path) => self.data(module, path, &segments, scope),
            // An unbound local (an output of a pattern): nothing from input yet.
            Resolved::Unknown => self.apply(module, Abs::default(), &segments, scope),
        }
    }

    /// A `data` path: the longest static prefix naming a rule gives the value, the rest is
    /// applied to it; `data.inventory` holds no input.
    fn data(
        &mut self,
        module: usize,
        mut path: String,
        segments: &[Segment<'_>],
        scope: &mut Scope,
    ) -> Outcome<Abs> {
        let mut rest = segments;
        loop {
            if path == "data.inventory" || path.starts_with("data.inventory.") {
                return self.apply(module, Abs::default(), rest, scope);
            }
            if self.defs.contains_key(&path) {
                let value = self.rule_value(&path, false)?;
                return self.apply(module, value, rest, scope);
            }
            match rest.split_first() {
                Some((Segment::Field(field), tail)) => {
                    path.push('.');
                    path.push_str(field);
                    rest = tail;
                }
                _ => return Err(format!("a reference to {path} that names no rule")),
            }
        }
    }

    /// Applies reference segments to a value.
    fn apply(
        &mut self,
        module: usize,
        mut value: Abs,
        segments: &[Segment<'_>],
        scope: &mut Scope,
    ) -> Outcome<Abs> {
        for segment in segments {
            value = match segment {
                Segment::Field(field) => value.refine(field),
                Segment::Index(index) => {
                    let unbound = match var_name(index) {
                        Some(name) => {
                            name == "_"
                                || (!scope.vars.contains_key(name)
                                    && matches!(self.resolve(module, name), Resolved::Unknown))
                        }
                        None => false,
                    };
                    if unbound {
                        // Iteration: the whole collection is read; the key is bound.
                        self.value(&value);
                        self.bind(module, index, &value.within(), scope)?;
                        value.element()
                    } else {
                        let key = self.expr(module, index, scope)?;
                        match key.consts.as_ref().filter(|_| key.origins.is_empty()) {
                            Some(fields) => fields
                                .iter()
                                .fold(Abs::default(), |acc, field| acc.union(value.refine(field))),
                            None => {
                                self.value(&value);
                                self.value(&key);
                                value.within()
                            }
                        }
                    }
                }
            };
        }
        Ok(value)
    }
}
