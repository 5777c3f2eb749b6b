//! `JsonBody<T>`: the JSON request-body extractor.
//!
//! Failures become localized problems instead of axum's plain-text rejections:
//! - wrong or missing `Content-Type` → 415 `unsupported_media_type`;
//! - body over the configured limit → 413 `payload_too_large`;
//! - syntactically broken JSON → 400 `malformed_json` with line and column;
//! - well-formed JSON of the wrong shape (unknown field, wrong type) → 422 `validation_failed` naming the
//!   field by its JSON path (via `serde_path_to_error`).
//!
//! Request types should use `#[serde(deny_unknown_fields)]` and `Option` fields, so that shape errors
//! come from serde and rule violations (including missing fields) from the domain, all reported at once.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use galley_kernel::{Violation, Violations};
use serde::de::DeserializeOwned;

use crate::problem::Problem;

#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers().get(header::CONTENT_TYPE)) {
            return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            } else {
                Problem::new(StatusCode::BAD_REQUEST, "bad_request")
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// `application/json` or any `application/*+json`, with any parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(mime) = content_type.and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<mime::Mime>().ok())
    else {
        return false;
    };
    mime.type_() == mime::APPLICATION
        && (mime.subtype() == mime::JSON || mime.suffix().is_some_and(|suffix| suffix == mime::JSON))
}

/// Parses `bytes` as `T`, translating serde errors into problems.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    // serde's derived structs also accept JSON arrays (as tuples), which would turn `[1]` into a confusing
    // error about field `[0]`; request bodies are objects, so a well-formed array is refused as a whole.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|error| shape_problem("", &error))?;
        let violation = Violation::new("body", "invalid_type").with("expected", "object");
        return Err(Problem::validation(Violations::from(violation)));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        shape_problem(&path, error.inner())
    })?;
    // Trailing characters after the document are a syntax error too.
    deserializer.end().map_err(|error| shape_problem("", &error))?;
    Ok(value)
}

fn shape_problem(path: &str, error: &serde_json::Error) -> Problem {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed_json")
                .with_arg("line", i64::try_from(error.line()).unwrap_or_default())
                .with_arg("column", i64::try_from(error.column()).unwrap_or_default())
        }
        Category::Data => Problem::validation(Violations::from(data_violation(path, error))),
    }
}

/// Classifies a serde data error by the wording serde itself defines for `de::Error::unknown_field`,
/// `invalid_type` and `missing_field` (stable across serde 1.x); anything else is `invalid_value`.
fn data_violation(path: &str, error: &serde_json::Error) -> Violation {
    let message = error.to_string();
    let field = |name: &str| {
        let root = if path == "." { "" } else { path };
        match (root.is_empty(), name.is_empty()) {
            (true, true) => "body".to_owned(),
            (true, false) => name.to_owned(),
            (false, true) => root.to_owned(),
            (false, false) => format!("{root}.{name}"),
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde_path_to_error's path already ends with the unknown key.
        let _name = rest.split('`').next().unwrap_or_default();
        return Violation::new(field(""), "unknown_field");
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return Violation::new(field(name), "required");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let expected = rest.split(", expected ").nth(1).unwrap_or_default();
        let expected = expected.split(" at line ").next().unwrap_or_default();
        return Violation::new(field(""), "invalid_type").with("expected", json_type(expected));
    }
    Violation::new(field(""), "invalid_value")
}

/// Maps serde's "expected ..." phrase to a JSON type name that translations select on.
fn json_type(expected: &str) -> &'static str {
    let expected = expected.trim();
    if expected.contains("string") || expected == "a character" {
        "string"
    } else if expected.contains("sequence") || expected.contains("array") || expected.contains("tuple") {
        "array"
    } else if expected.contains("struct") || expected.contains("map") {
        "object"
    } else if expected.contains("bool") {
        "boolean"
    } else if ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "usize", "isize", "integer"]
        .iter()
        .any(|t| expected.contains(t))
    {
        "integer"
    } else if expected.contains("f32") || expected.contains("f64") || expected.contains("number") {
        "number"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        tags: Option<Vec<String>>,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        count: Option<u32>,
    }

    fn violation_of(body: &str) -> (StatusCode, Vec<Violation>) {
        let problem = parse::<Body>(body.as_bytes()).expect_err("must fail");
        (problem.status, problem.violations)
    }

    #[test]
    fn accepts_well_formed_bodies() {
        let body: Body = parse(br#"{"name":"x","tags":["a"],"nested":{"count":2}}"#).expect("valid");
        assert_eq!(body.name.as_deref(), Some("x"));
    }

    #[test]
    fn syntax_errors_are_400_with_a_position() {
        let problem = parse::<Body>(b"{\n  \"name\": }").expect_err("broken");
        assert_eq!(problem.status, StatusCode::BAD_REQUEST);
        assert_eq!(problem.code, "malformed_json");
        assert!(
            problem
                .args
                .iter()
                .any(|(k, v)| *k == "line" && matches!(v, galley_platform::MessageArg::Number(2)))
        );
        assert_eq!(parse::<Body>(b"").expect_err("empty").code, "malformed_json");
        assert_eq!(parse::<Body>(b"{} trailing").expect_err("trailing").code, "malformed_json");
    }

    #[test]
    fn unknown_fields_are_named_by_path() {
        let (status, violations) = violation_of(r#"{"name":"x","colour":"red"}"#);
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(violations[0].field, "colour");
        assert_eq!(violations[0].code, "unknown_field");
        let (_, nested) = violation_of(r#"{"nested":{"size":1}}"#);
        assert_eq!(nested[0].field, "nested.size");
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        let (_, violations) = violation_of(r#"{"name":5}"#);
        assert_eq!(violations[0].field, "name");
        assert_eq!(violations[0].code, "invalid_type");
        assert_eq!(violations[0].param("expected"), Some(&galley_kernel::ParamValue::Text("string".into())));
        let (_, items) = violation_of(r#"{"tags":["a", 3]}"#);
        assert_eq!(items[0].field, "tags[1]");
        let (_, list) = violation_of(r#"{"tags":"a"}"#);
        assert_eq!(list[0].param("expected"), Some(&galley_kernel::ParamValue::Text("array".into())));
        let (_, number) = violation_of(r#"{"nested":{"count":"x"}}"#);
        assert_eq!(number[0].param("expected"), Some(&galley_kernel::ParamValue::Text("integer".into())));
        for not_an_object in ["[1]", " []", "5", "\"text\"", "null"] {
            let (_, root) = violation_of(not_an_object);
            assert_eq!(root[0].field, "body", "{not_an_object}");
            assert_eq!(root[0].param("expected"), Some(&galley_kernel::ParamValue::Text("object".into())));
        }
        assert_eq!(parse::<Body>(b"[1,").expect_err("broken array").code, "malformed_json");
    }

    #[test]
    fn content_types() {
        let value = |v: &'static str| header::HeaderValue::from_static(v);
        assert!(is_json(Some(&value("application/json"))));
        assert!(is_json(Some(&value("application/json; charset=utf-8"))));
        assert!(is_json(Some(&value("application/merge-patch+json"))));
        assert!(!is_json(Some(&value("text/plain"))));
        assert!(!is_json(Some(&value("application/x-www-form-urlencoded"))));
        assert!(!is_json(None));
    }
}
