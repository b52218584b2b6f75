//! Configuration errors as data: each malformed file and the exact `line:column: field: message`
//! it must be refused with.

use super::*;

fn error(yaml: &str) -> String {
    match Config::from_text("ratelimit.yaml", yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn malformed_files_name_file_line_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "domain: d\ndescriptors:\n  - key: PATH\n    rate_limit:\n      unit: minute\n      reqests_per_unit: 1\n",
            "ratelimit.yaml:6:7: descriptors[0].rate_limit.reqests_per_unit: unknown field `reqests_per_unit`, expected one of requests_per_unit, unit, unlimited, name, replaces",
        ),
        (
            "domain: d\ndescriptors:\n  - key: PATH\n    rate_limit:\n      unit: minutes\n      requests_per_unit: 1\n",
            "ratelimit.yaml:5:13: descriptors[0].rate_limit.unit: unknown unit `minutes` (expected second, minute, hour, day, week, month or year)",
        ),
        (
            "domain: d\ndescriptors:\n  - key: PATH\n    rate_limit:\n      unit: minute\n      requests_per_unit: -1\n",
            "ratelimit.yaml:6:26: descriptors[0].rate_limit.requests_per_unit: invalid u32",
        ),
        (
            "domain: d\ndescriptors:\n  - key: PATH\n    rate_limit:\n      unit: minute\n",
            "ratelimit.yaml:5:7: descriptors[0].rate_limit.requests_per_unit: a limit needs requests_per_unit (write 0 to refuse every request)",
        ),
        (
            "domain: d\ndescriptors:\n  - key: PATH\n    rate_limit:\n      requests_per_unit: 3\n",
            "ratelimit.yaml:5:7: descriptors[0].rate_limit.unit: a limit needs a unit (second, minute, hour, day, week, month or year), or `unlimited: true`",
        ),
        (
            "domain: d\ndescriptors:\n  - key: ldap\n    rate_limit:\n      unlimited: true\n      unit: second\n",
            "ratelimit.yaml:6:13: descriptors[0].rate_limit.unit: an unlimited limit has no unit",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n    value: x\n  - value: y\n",
            "ratelimit.yaml:5:5: descriptors[1].key: every descriptor needs a non-empty key",
        ),
        (
            "domain: d\ndescriptors:\n  - key: user\n    descriptors:\n      - key: path\n        value: /a\n      - key: path\n        value: /a\n",
            "ratelimit.yaml:7:9: descriptors[0].descriptors[1]: duplicate descriptor: key `path` with value `/a` is already at descriptors[0].descriptors[0] (line 5)",
        ),
        (
            "domain: d\ndescriptors:\n  - key: a\n  - key: a\n",
            "ratelimit.yaml:4:5: descriptors[1]: duplicate descriptor: key `a` without a value is already at descriptors[0] (line 3)",
        ),
        (
            "domain: \"\"\ndescriptors: []\n",
            "ratelimit.yaml:1:9: domain: the domain must not be empty",
        ),
        (
            "descriptors: []\n",
            "ratelimit.yaml:1:1: domain: the domain is required",
        ),
        (
            "domain: d\ndomain: e\n",
            "ratelimit.yaml:2:1: duplicate mapping key: domain, set DuplicateKeyPolicy in Options if acceptable",
        ),
        (
            "domain: d\ndescriptors:\n  - key: PATH\n   bad: indent\n",
            "ratelimit.yaml:4:4: descriptors: while parsing a block collection, did not find expected '-' indicator",
        ),
        (
            "domain: d\ndescriptors:\n  - key: [a]\n",
            "ratelimit.yaml:3:10: descriptors[0].key: expected string scalar",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    value: v\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n      name: n\n      replaces:\n        - name: n\n",
            "ratelimit.yaml:10:11: descriptors[0].rate_limit.replaces[0].name: a limit cannot replace itself (`n`)",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    shadow_mode: yes please\n",
            "ratelimit.yaml:4:18: descriptors[0].shadow_mode: invalid boolean",
        ),
        (
            "   \n",
            "ratelimit.yaml:1:1: the file is empty (expected `domain:` and `descriptors:`)",
        ),
    ];
    let mut failures = Vec::new();
    for (yaml, expected) in cases {
        let got = error(yaml);
        if got != *expected {
            failures.push(format!(
                "--- input:\n{yaml}--- expected:\n{expected}\n--- got:\n{got}\n"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn envoyproxy_ratelimit_configurations_load() {
    // Everything the reference format allows, including Go-yaml readings of plain scalars.
    let config = Config::from_text(
        "all.yaml",
        "domain: all\ndescriptors:\n  - key: remote_address\n    value: 50.0.0.5\n    rate_limit:\n      unit: SECOND\n      requests_per_unit: 0\n  - key: port\n    value: 8080\n    rate_limit: {unit: Day, requests_per_unit: 4}\n  - key: flag\n    value: true\n    shadow_mode: true\n    detailed_metric: true\n    rate_limit:\n      name: flags\n      unit: week\n      requests_per_unit: 2\n      replaces:\n        - name: other\n  - key: none\n    descriptors:\n  - key: ldap\n    rate_limit:\n      unlimited: true\n",
    )
    .unwrap();
    let limits = config.limits();
    let rules: Vec<(&str, Option<u32>)> = limits["all"]
        .iter()
        .map(|l| (l.rule.as_str(), l.rate.map(|r| r.requests_per_unit)))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("flag_true", Some(2)),
            ("ldap", None),
            ("port_8080", Some(4)),
            ("remote_address_50.0.0.5", Some(0)),
        ]
    );
    let flag = limits["all"][0];
    assert!(flag.shadow && flag.detailed_metric);
    assert_eq!(flag.name.as_deref(), Some("flags"));
    assert_eq!(flag.replaces, vec!["other".to_string()]);
    assert_eq!(flag.rate.map(|r| r.unit), Some(meshguard_rls::Unit::Week));
}

#[test]
fn folders_load_every_yaml_file_and_refuse_a_domain_twice() {
    let dir = std::env::temp_dir().join(format!("mg-rls-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("..2025_12_01")).unwrap();
    std::fs::write(dir.join("a.yaml"), "domain: a\ndescriptors: []\n").unwrap();
    std::fs::write(dir.join("b.yml"), "domain: b\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not config").unwrap();
    std::fs::write(dir.join(".hidden.yaml"), "domain: hidden\n").unwrap();
    let config = Config::load(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(config.domain_names(), vec!["a", "b"]);
    assert_eq!(config.files().len(), 2);

    std::fs::write(dir.join("c.yaml"), "# again\ndomain: a\n").unwrap();
    let err = Config::load(std::slice::from_ref(&dir))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2: domain `a` is already configured by {}:1",
            dir.join("c.yaml").display(),
            dir.join("a.yaml").display()
        )
    );

    let empty = dir.join("..2025_12_01");
    let err = Config::load(std::slice::from_ref(&empty))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no rate-limit configuration"), "{err}");
    let missing = dir.join("missing.yaml");
    let err = Config::load(std::slice::from_ref(&missing))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
