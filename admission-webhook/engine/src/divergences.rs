//! Where regorus 0.14.1 decides differently from OPA (and so from Gatekeeper), and what this
//! engine does about each; the table of record for the rewrites in `rewrite.rs`, `rego_scan.rs`
//! and `vm_rules.rs` (all in `meshguard-rego-compat`, shared with the proxy's authz filter).
//!
//! Every template's Rego, and every plain module `meshguard policy test` loads, goes through the
//! same rewrites ([`crate::rego::prepare`]) before regorus compiles it. Each rewrite keeps every
//! line where it was (inserted text goes on the same line), so errors, coverage and test
//! positions still point at the file's lines; a template's rewrites are listed in
//! [`crate::Template::notes`]. `tests/divergences.rs` states OPA's result for each row through
//! the engine on both evaluators, and checks that plain regorus still diverges: when an upgrade
//! fixes one, that test fails and names the rewrite to drop.
//!
//! | # | divergence | regorus bug? | evaluator | handling |
//! |---|---|---|---|---|
//! | 1 | a body line starting with `(` after a complete expression is read as a call on the previous line | yes (parser) | both | `;` inserted before the `(` (OPA's reading: the newline ends the expression) |
//! | 2 | chained rule bodies `head { a } { b }` are read as `else` | yes (parser) | both | split into separate rules with the same head, which OPA defines as equivalent |
//! | 3 | `not f(args)` is true when an argument is undefined | yes (evaluation) | both | as OPA's compiler does: each non-plain argument bound to a fresh variable before the `not` (with the statement's `with` modifiers), so it is undefined |
//! | 4 | `sprintf` with fewer arguments than verbs is undefined | yes (builtin) | both | literal format and argument array: the verbs without an argument rewritten to print `%!v(MISSING)` as OPA (Go's fmt) does |
//! | 5 | OPA's deprecated `any` / `all` builtins are missing | no (not implemented) | both | calls redirected to Rego functions with OPA's definitions, appended to the module |
//! | 6 | `x := <undefined>` succeeds | yes (VM only) | VM | the VM's copy gets `; x == x` after each local assignment |
//! | 7 | no conflict error when definitions of a complete rule disagree, or when one definition iterates to several values (`r = x { x := input.list[_] }`; found by `rego_differential`) | yes (VM only) | VM | the definitions (or the one that may iterate: its value or body indexes a reference by a non-literal, or uses `some`/`in`/`every`/`walk`, outside a comprehension) become one partial set; more than one element yields a marker, and the interpreter (which raises OPA's error) decides. The proxy's authz filter (VM only, no interpreter) applies the same rewrite with the rule's name in a `__mg_conflicts` set instead, checked after each decision: a conflict is the decision's error (`onError`) |
//! | 8 | `not obj[input.key]` with `input.key` undefined is true | yes (evaluation) | both | not compensated |
//! | 9 | `sprintf` with a computed format or argument list and missing arguments is undefined | yes (builtin) | both | not compensated (the rewrite of 4 needs literals) |
//! | 10 | a `some x` declaration after an iteration in the same body raises `duplicated definition of local variable x` (declared again for the iteration's next element) | yes (interpreter only) | interpreter | not compensated: the VM, the default evaluator, decides as OPA; a template on the interpreter reports the error as a violation. Found by `rego_differential`, which tolerates exactly this error when the module declares `x` with `some` |
//! | 11 | `some x` declared twice in one body (`var x declared above`) or never used (`declared var x unused`) is accepted, where OPA's compiler refuses the module | no check | both | refused at load, naming the line (`rego_scan::refused_declarations` in meshguard-rego-compat; "unused" read conservatively: `x` named nowhere else in the module) |
//!
//! Two more differences are speed, not semantics: the VM rebuilds a regex DFA cache on every
//! `regex.match`, and builds and drops a `VmError` as control flow (about 4.5% of a profile).
//!
//! # Minimal reproducers (for upstream reports)
//!
//! Each is a complete module; `data.t.p` is what to evaluate, with the input shown.
//!
//! **1.** OPA: `p` is true for input `{"x": 1, "a": 3, "b": 1}`. regorus: `could not find
//! function input.x`.
//! ```rego
//! package t
//! p {
//!   input.x
//!   (input.a - input.b) >= input.x
//! }
//! ```
//!
//! **2.** OPA: `v` is `{"one", "two"}` and `f(2)` is `"two"` for input `{"a": 1, "b": 2}`.
//! regorus: `else cannot be used with set rules` (and, for the function, `f(2)` undefined).
//! ```rego
//! package t
//! v[m] { input.a == 1; m := "one" } { input.b == 2; m := "two" }
//! f(x) = y { x == 1; y := "one" } { x == 2; y := "two" }
//! ```
//!
//! **3.** OPA: `p` and `q` are undefined for input `{}`. regorus: both true.
//! ```rego
//! package t
//! f(_, _)
//! p { not f(1, input.missing) }
//! q { not startswith(input.missing, "x") }
//! ```
//!
//! **4.** OPA: `p` is `"1 and %!v(MISSING)"`. regorus: undefined.
//! ```rego
//! package t
//! p := sprintf("%v and %v", [1])
//! ```
//!
//! **6.** (regorus' VM, `rvm`) OPA and regorus' interpreter: `p` is undefined for input `{}`.
//! regorus' VM: `p` is true.
//! ```rego
//! package t
//! p { x := input.missing; true }
//! ```
//!
//! **7.** (VM) OPA and the interpreter: `eval_conflict_error` for input `{"a": 1, "b": 2,
//! "list": [1, 2]}`, for `p` and for `q`. regorus' VM: `p` is 1, `q` is one of 1 and 2.
//! ```rego
//! package t
//! p = x { x := input.a }
//! p = x { x := input.b }
//! q = x { x := input.list[_] }
//! ```
//! The same for a function (`rego_differential`'s find 15): OPA and the interpreter raise
//! `functions must not produce multiple outputs for same inputs` for `f(1)` with the input
//! above, and regorus' VM gives one of 1 and 2. Rules are rewritten to be checked on the VM
//! (`vm_rules`); a function that may iterate is not, and its template runs on the interpreter.
//! ```rego
//! package t
//! f(x) = y { y := input.list[_] }
//! ```
//! Not compensated yet: several definitions of a function that give one call different values
//! (`f(x) := 1 if { x > 0 }` and `f(x) := 2 if { x > 1 }`, called with 2). OPA and the
//! interpreter raise the same error; regorus 0.14.1's VM makes the call undefined (measured).
//! Library templates have many multi-clause functions with exclusive bodies (`canonify_cpu`),
//! so deciding every such template on the interpreter would cost the VM's speed for them.
//!
//! **8.** OPA: `p` is undefined for input `{}`. regorus: true.
//! ```rego
//! package t
//! obj := {"a": 1}
//! p { not obj[input.key] }
//! ```
//!
//! **10.** OPA and regorus' VM: `p` is `{1, 2}` for input `{"list": [1, 2], "y": [1, 2]}`.
//! regorus' interpreter: `duplicated definition of local variable k`.
//! ```rego
//! package t
//! p[x] { x := input.list[_]; some k; input.y[k] == x }
//! ```
//!
//! **11.** OPA: `rego_compile_error: var k declared above` (for `p`) and `declared var j unused`
//! (for `q`). regorus' VM: both true for input `{"y": [1]}`.
//! ```rego
//! package t
//! p { some k; some k; input.y[k] == 1 }
//! q { some j; true }
//! ```
