//! Compiles proto/ with protox (no system protoc), writes the descriptor set that server
//! reflection serves (custom options included), and generates the code that measures requests
//! against their field limits (see `src/limits.rs`). The build fails when a string, bytes or
//! repeated field of a request has no `(caseway.common.v1.limit)`.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write;
use std::path::PathBuf;

use heck::{ToSnakeCase, ToUpperCamelCase};
use prost_reflect::{
    Cardinality, DescriptorPool, ExtensionDescriptor, FieldDescriptor, Kind, MessageDescriptor,
    Value,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "caseway/common/v1/common.proto",
        "caseway/common/v1/limits.proto",
        "caseway/common/v1/errors.proto",
        "caseway/tenancy/v1/tenancy.proto",
        "caseway/catalog/v1/catalog.proto",
        "caseway/clients/v1/clients.proto",
        "caseway/clients/v1/assessments.proto",
        "caseway/clients/v1/barriers.proto",
        "caseway/records/v1/records.proto",
        "caseway/authorizations/v1/authorizations.proto",
        "caseway/eligibility/v1/eligibility.proto",
        "caseway/ticketing/v1/ticketing.proto",
        "caseway/hmis/v1/hmis.proto",
        "caseway/events/v1/events.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("caseway_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let pool = compiler.descriptor_pool();
    match bounds(&pool) {
        Ok(code) => std::fs::write(out.join("bounds.rs"), code)?,
        Err(missing) => {
            return Err(format!(
                "request fields without a (caseway.common.v1.limit):\n  {}",
                missing.join("\n  ")
            )
            .into());
        }
    }
    std::fs::write(out.join("event_schemas.rs"), event_schemas(&pool)?)?;
    std::fs::write(out.join("rpcs.rs"), rpcs(&pool)?)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::limits::BoundedCodec")
        // google.rpc.Status is tonic-types' own, so its helpers read a bulk row's status.
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// Whether code is generated for a package here (the well-known types are prost-types').
fn ours(package: &str) -> bool {
    package.starts_with("caseway.") || package == "google.type"
}

/// The Rust path of a message type, as prost names it.
fn rust_path(message: &MessageDescriptor) -> String {
    let mut path = String::from("crate");
    for segment in message.package_name().split('.') {
        path.push_str("::");
        path.push_str(&escape(segment));
    }
    // Nested messages live in a module named after their parent.
    let relative = &message.full_name()[message.package_name().len() + 1..];
    let parts: Vec<&str> = relative.split('.').collect();
    for parent in &parts[..parts.len() - 1] {
        path.push_str("::");
        path.push_str(&escape(&parent.to_snake_case()));
    }
    path.push_str("::");
    path.push_str(&parts[parts.len() - 1].to_upper_camel_case());
    path
}

fn escape(ident: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "else", "enum", "false", "fn", "for", "if", "impl",
        "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "static",
        "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become",
        "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield",
        "async", "await", "dyn", "try", "gen",
    ];
    if KEYWORDS.contains(&ident) {
        format!("r#{ident}")
    } else {
        ident.to_string()
    }
}

/// `impl Rpc` for the request message of every method of Caseway's services: the method it
/// asks for, so a client names the call it makes (metrics, spans) from the request's type. A
/// request message taken by two methods fails the build.
fn rpcs(pool: &DescriptorPool) -> Result<String, Box<dyn std::error::Error>> {
    let mut by_request = std::collections::BTreeMap::new();
    for service in pool.services().filter(|s| ours(s.package_name())) {
        for method in service.methods() {
            let input = method.input();
            if !ours(input.package_name()) {
                continue;
            }
            let previous = by_request.insert(
                input.full_name().to_string(),
                (
                    rust_path(&input),
                    service.full_name().to_string(),
                    method.name().to_string(),
                ),
            );
            if let Some((_, other_service, other_method)) = previous {
                return Err(format!(
                    "{} is the request of both {other_service}/{other_method} and {}/{}",
                    input.full_name(),
                    service.full_name(),
                    method.name()
                )
                .into());
            }
        }
    }
    let mut code =
        String::from("// Generated by build.rs from the services of proto/: do not edit.\n");
    for (path, service, method) in by_request.values() {
        code.push_str(&format!(
            "impl crate::Rpc for {path} {{\n    const SERVICE: &'static str = {service:?};\n    const METHOD: &'static str = {method:?};\n}}\n"
        ));
    }
    Ok(code)
}

/// The table of each event type and the message its data is, from the messages'
/// `(caseway.events.v1.event_types)` options. A type named twice fails the build.
fn event_schemas(pool: &DescriptorPool) -> Result<String, Box<dyn std::error::Error>> {
    let extension = pool
        .get_extension_by_name("caseway.events.v1.event_types")
        .ok_or("caseway.events.v1.event_types is not defined")?;
    let mut rows = std::collections::BTreeMap::new();
    for message in pool.all_messages() {
        let options = message.options();
        if !options.has_extension(&extension) {
            continue;
        }
        let Value::List(types) = options.get_extension(&extension).into_owned() else {
            continue;
        };
        for event_type in types {
            let Value::String(event_type) = event_type else {
                continue;
            };
            if let Some(other) = rows.insert(event_type.clone(), message.full_name().to_string()) {
                return Err(format!(
                    "{event_type} is named by {other} and {}",
                    message.full_name()
                )
                .into());
            }
        }
    }
    let mut code = String::from(
        "/// Each event type and the full name of the protobuf message its data is, sorted by\n\
         /// type (from the `(caseway.events.v1.event_types)` options of `events.proto`).\n\
         pub const EVENT_SCHEMAS: &[(&str, &str)] = &[\n",
    );
    for (event_type, message) in &rows {
        writeln!(code, "    ({event_type:?}, {message:?}),")?;
    }
    code.push_str("];\n");
    Ok(code)
}

/// (max_length, max_items) of a field's limit option.
fn limit_of(
    field: &FieldDescriptor,
    extension: &ExtensionDescriptor,
) -> (Option<u64>, Option<u64>) {
    let options = field.options();
    if !options.has_extension(extension) {
        return (None, None);
    }
    let Value::Message(limit) = options.get_extension(extension).into_owned() else {
        return (None, None);
    };
    let read = |name: &str| match limit.get_field_by_name(name).as_deref() {
        Some(Value::U32(0)) | None => None,
        Some(Value::U32(n)) => Some(u64::from(*n)),
        _ => None,
    };
    (read("max_length"), read("max_items"))
}

fn bounds(pool: &DescriptorPool) -> Result<String, Vec<String>> {
    let extension = pool
        .get_extension_by_name("caseway.common.v1.limit")
        .expect("limits.proto declares caseway.common.v1.limit");
    let requests: BTreeSet<String> = pool
        .services()
        .filter(|s| s.package_name().starts_with("caseway."))
        .flat_map(|s| {
            s.methods()
                .map(|m| m.input().full_name().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    // Every message a request reaches.
    let mut reachable = BTreeSet::new();
    let mut queue: VecDeque<MessageDescriptor> = requests
        .iter()
        .filter_map(|name| pool.get_message_by_name(name))
        .collect();
    while let Some(message) = queue.pop_front() {
        if !reachable.insert(message.full_name().to_string()) {
            continue;
        }
        for field in message.fields() {
            if let Kind::Message(inner) = field.kind()
                && ours(inner.package_name())
            {
                queue.push_back(inner);
            }
        }
    }
    let mut missing = Vec::new();
    let mut code =
        String::from("// Generated by build.rs from the field limits of proto/: do not edit.\n");
    for message in pool.all_messages() {
        if !ours(message.package_name()) || message.is_map_entry() {
            continue;
        }
        let path = rust_path(&message);
        let request = requests.contains(message.full_name());
        let _ = writeln!(code, "impl crate::limits::Bounded for {path} {{");
        if request {
            let _ = writeln!(code, "    const REQUEST: bool = true;");
        }
        if reachable.contains(message.full_name()) {
            let body = measure_body(&message, &extension, &mut missing);
            if !body.is_empty() {
                let _ = writeln!(
                    code,
                    "    fn measure(&self, m: &mut crate::limits::Measure) {{\n{body}    }}"
                );
            }
        }
        let _ = writeln!(code, "}}");
    }
    if missing.is_empty() {
        Ok(code)
    } else {
        Err(missing)
    }
}

fn measure_body(
    message: &MessageDescriptor,
    extension: &ExtensionDescriptor,
    missing: &mut Vec<String>,
) -> String {
    let mut body = String::new();
    let mut oneofs = BTreeSet::new();
    for field in message.fields() {
        let name = field.name();
        let rust = escape(&name.to_snake_case());
        let (length, items) = limit_of(&field, extension);
        let mut need = |what: &str| missing.push(format!("{}.{name}: {what}", message.full_name()));
        if field.is_map() {
            need("maps are not supported in requests");
            continue;
        }
        if let Some(oneof) = field.containing_oneof()
            && !field.field_descriptor_proto().proto3_optional()
        {
            oneofs.insert(oneof.name().to_string());
            continue;
        }
        let optional = field.field_descriptor_proto().proto3_optional();
        let value = if optional {
            format!("if let Some(v) = &self.{rust} {{ ")
        } else {
            String::new()
        };
        let end = if optional { " }" } else { "" };
        let this = if optional {
            "v".to_string()
        } else {
            format!("self.{rust}")
        };
        match (field.cardinality(), field.kind()) {
            (Cardinality::Repeated, kind) => {
                let Some(items) = items else {
                    need("max_items");
                    continue;
                };
                match kind {
                    Kind::String => {
                        let Some(length) = length else {
                            need("max_length of each item");
                            continue;
                        };
                        let _ = writeln!(
                            body,
                            "        if m.items(\"{name}\", self.{rust}.len(), {items}) {{ m.strings(\"{name}\", &self.{rust}, {length}); }}"
                        );
                    }
                    Kind::Bytes => need("repeated bytes are not supported in requests"),
                    Kind::Message(inner) if ours(inner.package_name()) => {
                        let _ = writeln!(
                            body,
                            "        if m.items(\"{name}\", self.{rust}.len(), {items}) {{ m.messages(\"{name}\", &self.{rust}); }}"
                        );
                    }
                    Kind::Message(inner) => need(&format!(
                        "repeated {} is not supported in requests",
                        inner.full_name()
                    )),
                    _ => {
                        let _ = writeln!(
                            body,
                            "        m.items(\"{name}\", self.{rust}.len(), {items});"
                        );
                    }
                }
            }
            (_, kind @ (Kind::String | Kind::Bytes)) => {
                let Some(length) = length else {
                    need("max_length");
                    continue;
                };
                let measure = if kind == Kind::String {
                    "string"
                } else {
                    "bytes"
                };
                let reference = if optional {
                    this.clone()
                } else {
                    format!("&{this}")
                };
                let _ = writeln!(
                    body,
                    "        {value}m.{measure}(\"{name}\", {reference}, {length});{end}"
                );
            }
            (_, Kind::Message(inner)) => match inner.full_name() {
                "google.protobuf.FieldMask" => {
                    let _ = writeln!(
                        body,
                        "        if let Some(v) = &self.{rust} {{ m.field_mask(\"{name}\", v); }}"
                    );
                }
                "google.protobuf.Timestamp" | "google.protobuf.Duration" => {}
                other if ours(inner.package_name()) => {
                    let _ = other;
                    let _ = writeln!(
                        body,
                        "        if let Some(v) = &self.{rust} {{ m.message(\"{name}\", v); }}"
                    );
                }
                other => need(&format!("{other} is not supported in requests")),
            },
            _ => {}
        }
    }
    for oneof_name in oneofs {
        let oneof = message
            .oneofs()
            .find(|o| o.name() == oneof_name)
            .expect("the oneof of a field");
        let enum_path = format!(
            "{}::{}",
            rust_path(message)
                .rsplit_once("::")
                .map(|(module, name)| format!("{module}::{}", escape(&name.to_snake_case())))
                .expect("a path"),
            oneof_name.to_upper_camel_case()
        );
        let mut arms = String::new();
        for field in oneof.fields() {
            let name = field.name();
            let variant = name.to_upper_camel_case();
            let (length, _) = limit_of(&field, extension);
            match field.kind() {
                kind @ (Kind::String | Kind::Bytes) => {
                    let Some(length) = length else {
                        missing.push(format!("{}.{name}: max_length", message.full_name()));
                        continue;
                    };
                    let measure = if kind == Kind::String {
                        "string"
                    } else {
                        "bytes"
                    };
                    let _ = writeln!(
                        arms,
                        "            {enum_path}::{variant}(v) => m.{measure}(\"{name}\", v, {length}),"
                    );
                }
                Kind::Message(inner) if ours(inner.package_name()) => {
                    let _ = writeln!(
                        arms,
                        "            {enum_path}::{variant}(v) => m.message(\"{name}\", v),"
                    );
                }
                _ => {}
            }
        }
        if !arms.is_empty() {
            let field = escape(&oneof_name.to_snake_case());
            let _ = writeln!(
                body,
                "        #[allow(unreachable_patterns)]\n        if let Some(value) = &self.{field} {{\n          match value {{\n{arms}            _ => {{}}\n          }}\n        }}"
            );
        }
    }
    body
}
