//! Positions reported for documents and errors.

use super::*;

#[test]
fn yaml_documents_carry_their_first_line() {
    let text = "# header\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n---\n\n# c\nkind: Service\n";
    let docs = parse_documents("f.yaml", text, false).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!((docs[0].index, docs[0].line), (1, 3));
    assert_eq!((docs[1].index, docs[1].line), (2, 10));
    assert_eq!(docs[0].object_name(), "Pod a");
}

#[test]
fn yaml_error_names_document_and_absolute_line() {
    let text = "kind: Pod\n---\nkind: Service\nmetadata:\n  name: [unclosed\n";
    let err = parse_documents("m.yaml", text, false).unwrap_err();
    assert_eq!(err.document, Some(2));
    assert_eq!(err.line, Some(6));
    let shown = err.to_string();
    assert!(shown.starts_with("m.yaml:6:"), "{shown}");
    assert!(shown.contains("document 2"), "{shown}");
}

#[test]
fn json_lists_and_kind_list_expand() {
    let docs = parse_documents("l.json", r#"[{"kind":"A"},{"kind":"B"}]"#, true).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].index, 2);
    let list = "apiVersion: v1\nkind: List\nitems:\n- kind: Pod\n- kind: Service\n";
    let docs = parse_documents("l.yaml", list, false).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].value["kind"], "Service");
}

#[test]
fn json_error_has_line_and_column() {
    let err = parse_documents("x.json", "{\n  \"a\": ,\n}", true).unwrap_err();
    assert_eq!(err.line, Some(2));
    assert!(err.to_string().starts_with("x.json:2:"));
}

#[test]
fn empty_and_comment_documents_are_dropped() {
    let docs = parse_documents(
        "e.yaml",
        "---\n# only a comment\n---\n---\nkind: Pod\n",
        false,
    )
    .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].index, 1);
    assert_eq!(docs[0].line, 5);
}
