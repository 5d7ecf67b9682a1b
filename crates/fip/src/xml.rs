//! A small XML reader for the EC2 Query API's responses.
//!
//! EC2 answers with plain, well-formed XML: elements, text, the five predefined entities
//! and numeric references, an XML declaration, a default namespace. No CDATA, no DTD. This
//! reader handles exactly that and refuses anything else with an error (a truncated or
//! garbage body must be reported, never half-read), so no XML crate is needed.

use anyhow::{bail, Context};

/// An element: name (without prefix), children, concatenated text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub children: Vec<Node>,
    pub text: String,
}

impl Node {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Text of the child path `a/b/c`, trimmed; `None` if absent or empty.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut n = self;
        for part in path.split('/') {
            n = n.child(part)?;
        }
        let t = n.text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// The `item` children of the child path (EC2's list convention).
    pub fn items(&self, path: &str) -> Vec<&Node> {
        let mut n = self;
        for part in path.split('/') {
            match n.child(part) {
                Some(c) => n = c,
                None => return Vec::new(),
            }
        }
        n.children.iter().filter(|c| c.name == "item").collect()
    }
}

fn unescape(s: &str) -> anyhow::Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').context("unterminated entity")? + i;
        let ent = &rest[i + 1..end];
        let ch = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ if ent.starts_with("#x") => char::from_u32(u32::from_str_radix(&ent[2..], 16)?)
                .context("bad character reference")?,
            _ if ent.starts_with('#') => {
                char::from_u32(ent[1..].parse()?).context("bad character reference")?
            }
            _ => bail!("unknown entity &{ent};"),
        };
        out.push(ch);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// EC2's answers nest about eight deep; the tree is dropped recursively, so depth is
/// bounded well below what a thread's stack survives (a 280 KB answer of nested elements
/// aborted a hook; 1.4 MB crashed fip-claim).
pub const MAX_DEPTH: usize = 64;
/// Elements in one answer: a page of 1,000 route tables with their routes stays far below.
pub const MAX_ELEMENTS: usize = 500_000;

/// Parses a document into its root element.
pub fn parse(doc: &str) -> anyhow::Result<Node> {
    let mut stack: Vec<Node> = Vec::new();
    let mut elements = 0usize;
    let mut root: Option<Node> = None;
    let mut rest = doc.trim_start_matches('\u{feff}');
    loop {
        let Some(lt) = rest.find('<') else {
            if !rest.trim().is_empty() {
                bail!("text outside the document element");
            }
            break;
        };
        let text = &rest[..lt];
        if let Some(top) = stack.last_mut() {
            top.text.push_str(&unescape(text)?);
        } else if !text.trim().is_empty() {
            bail!("text outside the document element");
        }
        rest = &rest[lt..];
        if rest.starts_with("<?") {
            let end = rest.find("?>").context("unterminated declaration")?;
            rest = &rest[end + 2..];
            continue;
        }
        if rest.starts_with("<!--") {
            let end = rest.find("-->").context("unterminated comment")?;
            rest = &rest[end + 3..];
            continue;
        }
        if rest.starts_with("<!") {
            bail!("DTDs and CDATA are not expected here");
        }
        let gt = rest
            .find('>')
            .context("unterminated tag (truncated body?)")?;
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let node = stack.pop().context("closing tag without an opening one")?;
            if local(name.trim()) != node.name {
                bail!("</{}> closes <{}>", name.trim(), node.name);
            }
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None if root.is_none() => root = Some(node),
                None => bail!("more than one document element"),
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().context("empty tag")?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
        {
            bail!("bad element name {name:?}");
        }
        elements += 1;
        if elements > MAX_ELEMENTS {
            bail!("more than {MAX_ELEMENTS} elements: not an EC2 answer");
        }
        if stack.len() >= MAX_DEPTH {
            bail!("elements nested more than {MAX_DEPTH} deep: not an EC2 answer");
        }
        let node = Node {
            name: local(name).to_string(),
            ..Node::default()
        };
        if self_closing {
            match stack.last_mut() {
                Some(parent) => parent.children.push(node),
                None if root.is_none() => root = Some(node),
                None => bail!("more than one document element"),
            }
        } else {
            stack.push(node);
        }
    }
    if !stack.is_empty() {
        bail!(
            "document ends inside <{}> (truncated body?)",
            stack.last().map_or("", |n| n.name.as_str())
        );
    }
    root.context("empty document")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESSES: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><addressesSet><item><allocationId>eipalloc-8b65</allocationId><domain>vpc</domain><networkInterfaceId/><tagSet/><instanceId>i-1</instanceId><publicIp>127.215.178.238</publicIp></item></addressesSet><requestId>r</requestId></DescribeAddressesResponse>"#;

    #[test]
    fn reads_ec2_lists() {
        let r = parse(ADDRESSES).unwrap();
        assert_eq!(r.name, "DescribeAddressesResponse");
        let items = r.items("addressesSet");
        assert_eq!(items.len(), 1);
        assert_eq!(
            items[0].get("allocationId").as_deref(),
            Some("eipalloc-8b65")
        );
        assert_eq!(
            items[0].get("networkInterfaceId"),
            None,
            "empty element is absent"
        );
        assert_eq!(items[0].get("instanceId").as_deref(), Some("i-1"));
    }

    #[test]
    fn errors_and_entities() {
        let r = parse("<Response><Errors><Error><Code>AuthFailure</Code><Message>a &amp; b &lt;c&gt; &#65;&#x42;</Message></Error></Errors></Response>").unwrap();
        assert_eq!(
            r.get("Errors/Error/Message").as_deref(),
            Some("a & b <c> AB")
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for bad in [
            "",
            "not xml",
            "<a><b></a>",
            "<a>",
            "<a></a><b/>",
            "<a>&nope;</a>",
            "<a",
            "<a>x</a>trailing",
            "<!DOCTYPE x><a/>",
            "<a><![CDATA[x]]></a>",
            "<DescribeAddressesResponse><addressesSet><item>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    /// Deep nesting is refused before it can exhaust the stack (building or dropping).
    #[test]
    fn hostile_depth_and_size_are_errors_not_crashes() {
        let deep = format!("{}{}", "<a>".repeat(200_000), "</a>".repeat(200_000));
        let e = parse(&deep).unwrap_err();
        assert!(format!("{e:#}").contains("nested more than"), "{e:#}");
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        assert!(format!("{:#}", parse(&wide).unwrap_err()).contains("elements"));
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
