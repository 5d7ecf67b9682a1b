//! `hakit.toml(5)`, generated from the configuration schema itself: the structs that
//! serde reads the file into (each in the crate that owns its table) and the probe kinds,
//! their fields and their `///` documentation. A key added to a struct is in the page on the
//! next build; a key without documentation fails the build's test, not the reader.

use roff::{bold, italic, roman, Roff};

/// The schema sources, as the binaries compile them: each table's types live in the crate
/// that uses it.
const CORE: &str = include_str!("../../core/src/config.rs");
const GARP: &str = include_str!("../../net/src/garp.rs");
const NOTIFY: &str = include_str!("../../notify/src/config.rs");
const CHECK: &str = include_str!("../../check/src/config.rs");
const FIP: &str = include_str!("../../fip/src/config.rs");
const BGP: &str = include_str!("../../bgp/src/config.rs");
/// Where the value enums the tables name live (serde reads them lowercase).
const ENUMS: [&str; 7] = [
    CORE,
    GARP,
    NOTIFY,
    CHECK,
    FIP,
    BGP,
    include_str!("../../cli/src/nat_notify.rs"),
];

/// Each table of the file: its header, the struct that reads it, and where that struct is.
pub const TABLES: [(&str, &str, &str); 10] = [
    ("[general]", "General", CORE),
    ("[garp]", "Garp", GARP),
    ("[notify]", "Notify", NOTIFY),
    ("[[notify.instance]]", "Instance", NOTIFY),
    ("[check]", "Check", CHECK),
    ("[check.peer]", "PeerTable", CHECK),
    ("[[check.group]]", "Group", CHECK),
    ("[[check.probe]]", "Probe", CHECK),
    ("[fip]", "Fip", FIP),
    ("[bgp]", "Config", BGP),
];

/// One key: its TOML name, its value type in words, its documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub kind: String,
    pub doc: String,
}

/// The keys of `pub struct NAME` in `src`, in declaration order (sub-tables excluded).
pub fn keys(src: &str, name: &str) -> Vec<Key> {
    let start = format!("pub struct {name} ");
    let mut out = Vec::new();
    let mut inside = false;
    let mut doc: Vec<String> = Vec::new();
    let mut rename: Option<String> = None;
    for line in src.lines() {
        let t = line.trim();
        if !inside {
            inside = t.starts_with(&start) && t.ends_with('{');
            continue;
        }
        if t == "}" {
            break;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if let Some(r) = t.split("rename = \"").nth(1) {
            rename = r.split('"').next().map(str::to_string);
        } else if let Some(f) = t.strip_prefix("pub ") {
            let (field, ty) = f.split_once(':').unwrap_or((f, ""));
            let ty = ty.trim().trim_end_matches(',');
            let name = rename.take().unwrap_or_else(|| field.trim().to_string());
            // Arrays of tables are documented as tables of their own, a probe's
            // kind-specific keys with their kind.
            if ![
                "Vec<Instance>",
                "Vec<Probe>",
                "Vec<Group>",
                "Keys",
                "Option<PeerTable>",
            ]
            .contains(&ty)
            {
                out.push(Key {
                    name,
                    kind: words(ty),
                    doc: ascii(&doc.join(" ")),
                });
            }
            doc.clear();
        } else if !t.starts_with("#[") && !t.is_empty() {
            doc.clear();
        }
    }
    out
}

/// The documentation's typography in characters every man font has.
fn ascii(s: &str) -> String {
    s.replace('…', "...")
        .replace('—', "--")
        .replace('–', "-")
        .replace(['’', '‘'], "'")
        .replace(['“', '”'], "\"")
        .replace('×', "x")
        .replace('`', "")
}

/// A Rust type as the file spells the value.
fn words(ty: &str) -> String {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_prefix("Option<").and_then(|t| t.strip_suffix('>')) {
        return words(inner);
    }
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        return format!("list of {}", words(inner));
    }
    match ty.rsplit("::").next().unwrap_or(ty) {
        "String" => "string",
        "bool" => "boolean",
        "u8" | "u16" | "u32" | "u64" | "usize" => "integer",
        "f64" => "number",
        "HDuration" => "duration (e.g. 200ms, 1s, 5m)",
        "PathBuf" => "path",
        "IpAddr" => "IP address",
        "Cidr" => "address/prefix",
        other => return enum_words(other).unwrap_or_else(|| other.to_string()),
    }
    .to_string()
}

/// `pub enum NAME`'s variants as the file spells them (`gobgp | frr | bird`), from the
/// source that declares it: a variant added is in the page on the next build.
fn enum_words(name: &str) -> Option<String> {
    let head = format!("pub enum {name} {{");
    let src = ENUMS.iter().find(|s| s.contains(&head))?;
    let body = src.split(&head).nth(1)?.split('}').next()?;
    let v: Vec<String> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        })
        .collect();
    (!v.is_empty()).then(|| v.join(" | "))
}

/// Each probe kind and its own keys, from the kinds' definitions (hakit-check's registry).
fn kinds(r: &mut Roff) {
    r.control("PP", []);
    r.text([roman(format!(
        "kind is one of: {}. Each kind takes the common keys above and its own:",
        hakit_check::kinds::names()
    ))]);
    for d in hakit_check::kinds::KINDS {
        r.control("SS", [format!("kind = {}", d.name).as_str()]);
        r.text([roman(ascii(d.about))]);
        for k in d.keys {
            r.control("TP", []);
            r.text([bold(k.name), roman(" ("), italic(k.ty.words()), roman(")")]);
            r.text([roman(ascii(k.doc))]);
        }
    }
}

/// The page, in roff.
pub fn render() -> String {
    let mut r = Roff::new();
    r.control("TH", ["HAKIT.TOML", "5", "", "hakit", "hakit"]);
    r.control("SH", ["NAME"]);
    r.text([roman("hakit.toml - configuration of the hakit binaries")]);
    r.control("SH", ["SYNOPSIS"]);
    r.text([bold("/etc/hakit/hakit.toml")]);
    r.control("SH", ["DESCRIPTION"]);
    r.text([roman(
        "One TOML file configures garp-burst, nat-notify, ha-check and fip-claim: one table per \
         binary plus [general] and [bgp]. Each binary reads the tables it uses and refuses an \
         unknown key in them, naming the key and its line (exit 2); an unknown table is refused \
         by every binary. A flag or an environment variable (HAKIT_<TABLE>_<KEY>) overrides a \
         key where the binary offers one: flag, then environment, then file, then default. The \
         file may hold no secret: provider tokens come from the environment or a token_file of \
         mode 0600. hakit-setup(8) renders this file for a node from the pair's values file.",
    )]);
    for (header, ty, src) in TABLES {
        r.control("SH", [header]);
        for k in keys(src, ty) {
            r.control("TP", []);
            r.text([bold(&k.name), roman(" ("), italic(&k.kind), roman(")")]);
            r.text([roman(&k.doc)]);
        }
        if ty == "Probe" {
            kinds(&mut r);
        }
    }
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([bold("/etc/hakit/hakit.toml")]);
    r.text([roman(
        "The default path; --config PATH or HAKIT_CONFIG name another.",
    )]);
    r.control("TP", []);
    r.text([bold("/usr/share/hakit/examples/")]);
    r.text([roman(
        "An annotated file with every key (hakit.toml) and one per cloud.",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "nat-notify(8), ha-check(8), fip-claim(8), garp-burst(8), hakit-setup(8), keepalived.conf(5)",
    )]);
    r.to_roff()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of every table is in the page, and documented: a field added without a
    /// `///` line fails here.
    #[test]
    fn every_key_is_documented() {
        let page = render();
        let mut n = 0;
        for (header, ty, src) in TABLES {
            let ks = keys(src, ty);
            assert!(!ks.is_empty(), "{header}: no keys found in {ty}");
            for k in ks {
                assert!(!k.doc.is_empty(), "{header} {}: no documentation", k.name);
                assert!(
                    page.contains(&k.name),
                    "{header} {} not in the page",
                    k.name
                );
                n += 1;
            }
        }
        assert!(n > 80, "only {n} keys");
        let general = keys(CORE, "General");
        assert!(general.iter().any(|k| k.name == "pair"));
        let notify = keys(NOTIFY, "Notify");
        assert!(notify
            .iter()
            .all(|k| k.name != "instance" && k.name != "instances"));
        let probe = keys(CHECK, "Probe");
        assert_eq!(probe[0].name, "kind");
        assert!(probe.iter().all(|k| k.name != "keys"));
        assert!(
            probe.iter().any(|k| k.name == "group"),
            "a probe's group key"
        );
        for d in hakit_check::kinds::KINDS {
            assert!(
                page.contains(&format!(".SS \"kind = {}\"", d.name)),
                "{}",
                d.name
            );
            for k in d.keys {
                assert!(
                    page.contains(k.name),
                    "{}.{} not in the page",
                    d.name,
                    k.name
                );
            }
        }
        let bgp = keys(BGP, "Config");
        assert!(bgp
            .iter()
            .any(|k| k.name == "speaker" && k.kind == "gobgp | frr | bird"));
        let fip = keys(FIP, "Fip");
        assert!(fip
            .iter()
            .any(|k| k.name == "provider" && k.kind == "aws | linode | hetzner | digitalocean"));
    }
}
