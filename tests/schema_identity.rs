//! Our `proto/` against the reference listing of the Elarian SDKs' schema
//! (`tests/fixtures/elarian-wire-schema.txt`): every message, field, oneof and enum value of the
//! reference must exist in ours with the same number, type and label. Names of files and packages
//! may differ (they never reach the wire).

use std::collections::BTreeMap;
use std::path::Path;

use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

/// Splits the reference listing into the files it names and compiles them.
fn reference() -> FileDescriptorSet {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/elarian-wire-schema.txt"))
            .expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    let mut current: Option<(String, String)> = None;
    let flush = |current: &mut Option<(String, String)>, files: &mut Vec<String>| {
        if let Some((name, body)) = current.take() {
            std::fs::write(dir.path().join(&name), body).expect("write");
            files.push(name);
        }
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("// ===== file ") {
            flush(&mut current, &mut files);
            let name = rest.split_whitespace().next().expect("file name").to_string();
            let imports = rest.split("imports: ").nth(1).unwrap_or("");
            let mut header = String::from("syntax = \"proto3\";\npackage com.elarian.hera.proto;\n");
            for import in imports.split(", ").filter(|s| !s.is_empty()) {
                header.push_str(&format!("import \"{import}\";\n"));
            }
            current = Some((name, header));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&mut current, &mut files);
    protox::compile(&files, [dir.path()]).expect("reference compiles")
}

fn ours() -> FileDescriptorSet {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let files: Vec<_> =
        std::fs::read_dir(root.join("hodi/wire")).expect("proto dir").map(|e| e.expect("entry").path()).collect();
    protox::compile(&files, [&root]).expect("ours compiles")
}

/// Type names without their package, so `.com.elarian.hera.proto.Cash` equals `.hodi.wire.Cash`.
fn short(type_name: &str) -> String {
    if type_name.starts_with(".google.") {
        return type_name.to_string();
    }
    type_name.rsplit('.').next().unwrap_or(type_name).to_string()
}

fn collect(set: &FileDescriptorSet) -> (BTreeMap<String, DescriptorProto>, BTreeMap<String, EnumDescriptorProto>) {
    fn walk(
        prefix: &str,
        m: &DescriptorProto,
        msgs: &mut BTreeMap<String, DescriptorProto>,
        enums: &mut BTreeMap<String, EnumDescriptorProto>,
    ) {
        let name = format!("{prefix}{}", m.name());
        for nested in &m.nested_type {
            walk(&format!("{name}."), nested, msgs, enums);
        }
        for e in &m.enum_type {
            enums.insert(format!("{name}.{}", e.name()), e.clone());
        }
        msgs.insert(name, m.clone());
    }
    let (mut msgs, mut enums) = (BTreeMap::new(), BTreeMap::new());
    for file in &set.file {
        if file.package().starts_with("google.") {
            continue;
        }
        for m in &file.message_type {
            walk("", m, &mut msgs, &mut enums);
        }
        for e in &file.enum_type {
            enums.insert(e.name().to_string(), e.clone());
        }
    }
    (msgs, enums)
}

#[test]
fn every_reference_message_enum_and_oneof_is_wire_identical_in_ours() {
    let (ref_msgs, ref_enums) = collect(&reference());
    let (our_msgs, our_enums) = collect(&ours());
    assert!(ref_msgs.len() >= 136, "the reference should list every message ({} found)", ref_msgs.len());
    let mut problems = Vec::new();
    for (name, theirs) in &ref_msgs {
        let Some(mine) = our_msgs.get(name) else {
            problems.push(format!("message {name} is missing"));
            continue;
        };
        for field in &theirs.field {
            let Some(m) = mine.field.iter().find(|f| f.number() == field.number()) else {
                problems.push(format!("{name}.{} (= {}) is missing", field.name(), field.number()));
                continue;
            };
            let oneof = |d: &DescriptorProto, f: &prost_types::FieldDescriptorProto| {
                f.oneof_index.filter(|_| !f.proto3_optional()).map(|i| d.oneof_decl[i as usize].name().to_string())
            };
            let same = m.name() == field.name()
                && m.r#type() == field.r#type()
                && m.label() == field.label()
                && short(m.type_name()) == short(field.type_name())
                && oneof(mine, m) == oneof(theirs, field);
            if !same {
                problems.push(format!(
                    "{name}.{} (= {}) differs: ours {m:?}, reference {field:?}",
                    field.name(),
                    field.number()
                ));
            }
        }
        if mine.field.len() != theirs.field.len() {
            problems.push(format!("{name} has {} fields, the reference {}", mine.field.len(), theirs.field.len()));
        }
    }
    for (name, theirs) in &ref_enums {
        let Some(mine) = our_enums.get(name) else {
            problems.push(format!("enum {name} is missing"));
            continue;
        };
        let values =
            |e: &EnumDescriptorProto| e.value.iter().map(|v| (v.name().to_string(), v.number())).collect::<Vec<_>>();
        if values(mine) != values(theirs) {
            problems.push(format!("enum {name} differs"));
        }
    }
    assert!(problems.is_empty(), "{} differences:\n{}", problems.len(), problems.join("\n"));
}
