//! Names (`herald_domain::names`) and scope paths: any text through every name type's `parse`,
//! `VersionRef::parse`, `url_segment` and `Scope::parse_path`. Nothing may panic, and what is
//! accepted must keep the rules the types promise: identifiers stay in their alphabet, labels
//! never read back as a version index, version references and URL segments round-trip.
#![no_main]

use herald_domain::automation::{Scope, ScopeType};
use herald_domain::names::{
    url_segment, AliasName, ArtifactType, CollectionName, EntityName, MetricName, ProjectName,
    RegistryName, RunName, TagName, Username, VersionRef, LATEST, MAX_METRIC_NAME_CHARS,
    MAX_NAME_CHARS, REGISTRY_PREFIX,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let chars = s.chars().count();

    macro_rules! identifier {
        ($($t:ty),*) => {$(
            if let Ok(n) = <$t>::parse(s) {
                assert_eq!(n.as_str(), s);
                assert!((1..=MAX_NAME_CHARS).contains(&chars));
                assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
                assert!(s != "." && s != "..");
                // Names travel as JSON strings too; the serde path applies the same rules.
                let json = serde_json::to_string(&n).expect("a name serialises");
                assert_eq!(serde_json::from_str::<$t>(&json).expect("a name deserialises"), n);
            }
        )*};
    }
    identifier!(
        EntityName,
        Username,
        ProjectName,
        RegistryName,
        CollectionName,
        ArtifactType,
        RunName
    );

    if let Ok(r) = RegistryName::parse(s) {
        let p = ProjectName::for_registry(&r);
        assert!(p.is_registry());
        assert_eq!(
            ProjectName::parse(p.as_str()).expect("a registry's project name"),
            p
        );
    }
    if let Ok(p) = ProjectName::parse(s) {
        // Not every registry project has a valid short name (`wandb-registry-..`): the API
        // refuses to create such projects at all. Those that do map back to themselves.
        if let Some(short) = s.strip_prefix(REGISTRY_PREFIX) {
            if let Ok(r) = RegistryName::parse(short) {
                assert!(p.is_registry());
                assert_eq!(ProjectName::for_registry(&r), p);
            }
        }
    }

    let alias = AliasName::parse(s);
    let tag = TagName::parse(s);
    for label in [
        alias.as_ref().map(AliasName::as_str),
        tag.as_ref().map(TagName::as_str),
    ]
    .into_iter()
    .flatten()
    {
        assert!((1..=MAX_NAME_CHARS).contains(&chars));
        assert!(!s.contains('/') && !s.contains(':'));
        assert!(!s.chars().any(char::is_control));
        assert_eq!(label.trim(), label);
    }
    if alias.is_ok() {
        assert_ne!(s, LATEST);
        assert_eq!(
            VersionRef::parse(s).expect("an alias is a version reference"),
            VersionRef::Alias(s.to_string())
        );
    }

    if let Ok(m) = MetricName::parse(s) {
        assert_eq!(m.as_str(), s);
        assert!((1..=MAX_METRIC_NAME_CHARS).contains(&chars));
    }

    if let Ok(v) = VersionRef::parse(s) {
        let shown = v.to_string();
        assert_eq!(
            VersionRef::parse(&shown).expect("a shown version reference"),
            v
        );
        if let VersionRef::Index(i) = v {
            assert!(i >= 0);
            assert_eq!(shown, s);
        }
    }

    let seg = url_segment(s);
    assert!(seg
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
    assert_eq!(percent_decode(&seg), s.as_bytes());

    for scope_type in [
        ScopeType::Entity,
        ScopeType::Project,
        ScopeType::ArtifactCollection,
    ] {
        let scope = Scope {
            scope_type,
            path: s.to_string(),
        };
        if let Ok(p) = scope.parse_path() {
            let parts: Vec<&str> = [
                Some(p.entity.as_str()),
                p.project.as_deref(),
                p.collection.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect();
            assert!(parts
                .iter()
                .all(|part| !part.is_empty() && !part.contains('/')));
            assert_eq!(parts.join("/"), s);
        }
    }
    let _ = ScopeType::parse(s);
});

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
