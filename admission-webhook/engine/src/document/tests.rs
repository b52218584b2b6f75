//! Positions reported for documents and errors.

use super::*;

#[test]
fn documents_are_numbered_as_a_person_counts_them_and_located() {
    let text = "# header\n---\na: 1\n---\n\n---\n# about b\nb: 2\nc: 3\n";
    let docs = parse_documents("f.yaml", text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].location.document, docs[0].location.line), (1, 3));
    assert_eq!((docs[1].location.document, docs[1].location.line), (2, 8));
    assert_eq!(docs[1].text_line, 7);
    assert_eq!(docs[1].value["c"], 3);
    assert_eq!(docs[1].position(), "f.yaml:8 (document 2)");
}

#[test]
fn yaml_errors_name_the_document_and_the_absolute_line() {
    let text = "kind: Pod\n---\nkind: Service\nmetadata:\n  name: [unclosed\n";
    let err = parse_documents("m.yaml", text).unwrap_err();
    let LoadError::Syntax {
        document,
        line,
        ref message,
        ..
    } = err
    else {
        panic!("{err}");
    };
    assert_eq!((document, line), (Some(2), 6));
    assert!(!message.contains(" at line "), "{message}");
    let shown = err.to_string();
    assert!(shown.starts_with("m.yaml:6:"), "{shown}");
    assert!(shown.contains("document 2"), "{shown}");
}

#[test]
fn json_arrays_and_lists_are_expanded() {
    let docs = parse_documents("l.json", r#"[{"kind":"A"},{"kind":"B"}]"#).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].location.document, 2);
    let text = r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"A"},{"kind":"B"}]}"#;
    let docs = parse_documents("l.json", text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].kind(), "B");
    let list = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n- kind: Service\n";
    let docs = parse_documents("l.yaml", list).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].value["kind"], "Service");
}

#[test]
fn json_errors_have_line_and_column() {
    let err = parse_documents("x.json", "{\n  \"a\": ,\n}").unwrap_err();
    let LoadError::Syntax { line, column, .. } = err else {
        panic!("{err}");
    };
    assert_eq!(line, 2);
    assert!(column > 1);
}

#[test]
fn a_value_on_the_marker_line_starts_the_document() {
    let docs = parse_documents("m.yaml", "--- {kind: A}\n--- # comment\nkind: B\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].location.line, 1);
    assert_eq!(docs[1].location.line, 3);
}

#[test]
fn object_names_read_as_a_person_writes_them() {
    let docs = parse_documents(
        "o.yaml",
        "kind: Pod\nmetadata: {name: a, namespace: shop}\n---\nkind: Namespace\nmetadata: {generateName: x-}\n",
    )
    .unwrap();
    assert_eq!(docs[0].object_name(), "Pod shop/a");
    assert_eq!(docs[1].object_name(), "Namespace x-");
}

#[test]
fn blocks_are_located() {
    let doc = "a:\n  rego: |\n    package x\n\n    violation[r] {\n";
    assert_eq!(locate_block(doc, "package x\n\nviolation[r] {\n"), Some(3));
    assert_eq!(
        locate_block(doc, "\npackage x\n\nviolation[r] {\n"),
        Some(2)
    );
}

#[test]
fn flow_style_documents_between_separators_are_a_yaml_stream() {
    let text = "{\"kind\": \"Pod\"}\n---\n{\"kind\": \"Service\"}\n";
    let docs = parse_documents("m.yaml", text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].value["kind"], "Service");
    assert_eq!((docs[1].location.document, docs[1].location.line), (2, 3));
    // A .json file stays JSON: the separator is a syntax error there.
    let err = read_file_text_as_json("m.json", text);
    assert!(err.contains("invalid JSON"), "{err}");
}

fn read_file_text_as_json(name: &str, text: &str) -> String {
    parse(name, text, true).unwrap_err().to_string()
}
