//! Payload templates (`herald_domain::template`): any text, as a JSON payload (`parse_str`, the
//! webhook path) and as one plain string (`parse` of a JSON string, the Slack and notification
//! path). Parsing and rendering must never panic, rendering every placeholder as itself must
//! give the payload back, and masked rendering must never show a secret's value.
#![no_main]

use herald_domain::template::{Template, ACCESS_TOKEN, EVENT_VARIABLES};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// What the lookup returns for secrets; masked output must never contain it.
const SECRET_VALUE: &str = "s3cr3t-VALUE";
const SECRET_NAMES: &[&str] = &["API_KEY", "TOKEN_2"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = Template::parse_str(text) {
        check(&t);
    }
    let t = Template::parse(&Value::String(text.to_string()))
        .expect("a single string nests one level and always parses");
    check(&t);
});

fn check(t: &Template) {
    let _ = t.check(SECRET_NAMES);
    let names: Vec<&str> = t.placeholders().collect();

    // Each placeholder rendered as itself reproduces the source, keys included.
    let same = t.render(&|name: &str| Some(format!("${{{name}}}")));
    assert_eq!(&same, t.source(), "rendering placeholders as themselves");

    // No placeholder left: nothing to look up gives text without any of them.
    let empty = t.render(&|_: &str| None);
    let _ = serde_json::to_string(&empty).expect("rendered payloads serialise");

    // Values that look like JSON syntax or like further placeholders stay text.
    let hostile = t.render(&|name: &str| match name.len() % 3 {
        0 => Some("\"}], \\\"x\\\": {\"${ACCESS_TOKEN}".to_string()),
        1 => Some(format!("${{{name}}}${{{name}}}")),
        _ => Some(String::new()),
    });
    let _ = serde_json::to_string(&hostile).expect("rendered payloads serialise");

    let secret = |name: &str| {
        if name == ACCESS_TOKEN || SECRET_NAMES.contains(&name) {
            Some(SECRET_VALUE.to_string())
        } else if EVENT_VARIABLES.contains(&name) {
            Some(format!("<{name}>"))
        } else {
            Some("meta".to_string())
        }
    };
    let masked = t.render_masked(&secret, SECRET_NAMES).to_string();
    if !t.source().to_string().contains(SECRET_VALUE) {
        assert!(
            !masked.contains(SECRET_VALUE),
            "masked rendering shows a secret: {masked}"
        );
    }
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "placeholders sorted, each once"
    );
}
