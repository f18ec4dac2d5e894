//! A positioned YAML tree built from `yaml-rust2` parser events.
//!
//! The tree keeps the line and column of every node so that validation errors
//! can point at the exact place in the file. Aliases are expanded (with a
//! budget, so alias bombs cannot exhaust memory), nesting depth is bounded (so
//! neither building nor dropping the tree can overflow the stack), and only the
//! first document of a stream is read, as Akash does.

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of collections accepted in an SDL file.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes (after alias expansion) accepted in an SDL file.
pub(crate) const MAX_NODES: usize = 200_000;

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub column: u32,
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
        }
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted: its type (null, bool, int, float, string) comes from its text.
    Plain,
    /// Quoted or block: always a string.
    Quoted,
}

/// The resolved type of a scalar under the YAML 1.2 core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarType {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

#[derive(Debug, Clone)]
pub(crate) struct Scalar {
    pub text: String,
    pub style: Style,
    pub tag: Option<String>,
}

impl Scalar {
    pub(crate) fn scalar_type(&self) -> ScalarType {
        if let Some(tag) = &self.tag {
            return match tag.as_str() {
                "str" => ScalarType::Str,
                "null" => ScalarType::Null,
                "bool" => ScalarType::Bool,
                "int" => ScalarType::Int,
                "float" => ScalarType::Float,
                _ => ScalarType::Str,
            };
        }
        if self.style == Style::Quoted {
            return ScalarType::Str;
        }
        resolve_plain(&self.text)
    }
}

fn resolve_plain(t: &str) -> ScalarType {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return ScalarType::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return ScalarType::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return ScalarType::Float,
        _ => {}
    }
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        return ScalarType::Int;
    }
    if let Some(hex) = t.strip_prefix("0x")
        && !hex.is_empty()
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return ScalarType::Int;
    }
    if let Some(oct) = t.strip_prefix("0o")
        && !oct.is_empty()
        && oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return ScalarType::Int;
    }
    if is_float_text(body) {
        return ScalarType::Float;
    }
    ScalarType::Str
}

/// `[0-9]*(\.[0-9]*)?([eE][-+]?[0-9]+)?` with at least one digit in the mantissa.
fn is_float_text(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mantissa, ""),
    };
    let digits_ok = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int_part)
        || !digits_ok(frac_part)
        || (int_part.is_empty() && frac_part.is_empty())
    {
        return false;
    }
    if !mantissa.contains('.') && exponent.is_none() {
        return false;
    }
    match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits_ok(e)
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

impl Node {
    /// A short description of the node's type for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
            NodeKind::Scalar(s) => match s.scalar_type() {
                ScalarType::Null => "null",
                ScalarType::Bool => "a boolean",
                ScalarType::Int => "an integer",
                ScalarType::Float => "a number",
                ScalarType::Str => "a string",
            },
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar(s) if s.scalar_type() == ScalarType::Null)
    }

    pub(crate) fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            NodeKind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// A YAML syntax error (or a limit that was exceeded) with its position.
#[derive(Debug, Clone)]
pub(crate) struct YamlError {
    pub pos: Pos,
    pub message: String,
}

enum Frame {
    Seq { pos: Pos, anchor: usize, items: Vec<Node> },
    Map { pos: Pos, anchor: usize, entries: Vec<(Node, Node)>, key: Option<Node> },
}

fn tag_name(tag: Option<Tag>) -> Option<String> {
    let tag = tag?;
    if tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:" {
        Some(tag.suffix)
    } else {
        Some(format!("{}{}", tag.handle, tag.suffix))
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut total = 0usize;
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        total = total.saturating_add(1);
        match &n.kind {
            NodeKind::Scalar(_) => {}
            NodeKind::Seq(items) => stack.extend(items.iter()),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    total
}

fn depth_of(node: &Node) -> usize {
    let mut max = 0usize;
    let mut stack = vec![(node, 1usize)];
    while let Some((n, d)) = stack.pop() {
        max = max.max(d);
        match &n.kind {
            NodeKind::Scalar(_) => {}
            NodeKind::Seq(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    stack.push((k, d + 1));
                    stack.push((v, d + 1));
                }
            }
        }
    }
    max
}

/// Parses the first YAML document of `text` into a positioned tree.
///
/// Returns `Ok(None)` for an empty stream.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Node> = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let mut root: Option<Node> = None;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| YamlError {
            pos: Pos::from_marker(e.marker()),
            message: format!("invalid yaml: {}", e.info()),
        })?;
        let pos = Pos::from_marker(&marker);
        let completed: Option<(Node, usize)> = match event {
            Event::StreamEnd => break,
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                None
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart => None,
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(YamlError { pos, message: "unknown alias".into() });
                };
                let size = count_nodes(target);
                nodes = nodes.saturating_add(size);
                if nodes > MAX_NODES {
                    return Err(YamlError {
                        pos,
                        message: format!(
                            "document too large after expanding aliases (more than {MAX_NODES} nodes)"
                        ),
                    });
                }
                if stack.len() + depth_of(target) > MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                let mut node = target.clone();
                node.pos = pos;
                Some((node, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                nodes = nodes.saturating_add(1);
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    _ => Style::Quoted,
                };
                Some((
                    Node {
                        pos,
                        kind: NodeKind::Scalar(Scalar { text, style, tag: tag_name(tag) }),
                    },
                    anchor,
                ))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq { pos, anchor, items: Vec::new() });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map { pos, anchor, entries: Vec::new(), key: None });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { pos, anchor, items }) => {
                    // The parser marks a block collection after its first
                    // entry's indicator; its first entry is a better place.
                    let pos = items.first().map(|i| i.pos).filter(|p| *p < pos).unwrap_or(pos);
                    Some((Node { pos, kind: NodeKind::Seq(items) }, anchor))
                }
                _ => return Err(YamlError { pos, message: "unbalanced sequence".into() }),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { pos, anchor, entries, .. }) => {
                    let pos =
                        entries.first().map(|(k, _)| k.pos).filter(|p| *p < pos).unwrap_or(pos);
                    Some((Node { pos, kind: NodeKind::Map(entries) }, anchor))
                }
                _ => return Err(YamlError { pos, message: "unbalanced mapping".into() }),
            },
        };
        if stack.len() > MAX_DEPTH {
            return Err(YamlError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        if nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: format!("document too large (more than {MAX_NODES} nodes)"),
            });
        }
        let Some((node, anchor)) = completed else { continue };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => {
                root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let node = parse("a:\n  b: 1\n").ok().flatten();
        let Some(Node { kind: NodeKind::Map(entries), .. }) = node else {
            panic!("expected a map");
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, column: 1 });
        let NodeKind::Map(inner) = &entries[0].1.kind else { panic!("expected a map") };
        assert_eq!(inner[0].1.pos, Pos { line: 2, column: 6 });
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_1_2() {
        let cases = [
            ("1", ScalarType::Int),
            ("-3", ScalarType::Int),
            ("0.5", ScalarType::Float),
            ("1e3", ScalarType::Float),
            ("true", ScalarType::Bool),
            ("yes", ScalarType::Str),
            ("~", ScalarType::Null),
            ("100m", ScalarType::Str),
            ("2.0", ScalarType::Float),
            (".", ScalarType::Str),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve_plain(text), expected, "{text}");
        }
    }

    #[test]
    fn alias_bomb_is_rejected() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&doc).err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let doc = "[".repeat(10_000);
        let err = parse(&doc).err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("nesting") || err.contains("recursion limit"), "{err}");
        let mut block = String::new();
        for depth in 0..(MAX_DEPTH + 5) {
            block.push_str(&" ".repeat(depth));
            block.push_str("k:\n");
        }
        let err = parse(&block).err().map(|e| e.message).unwrap_or_default();
        assert!(err.contains("nesting deeper than"), "{err}");
    }

    #[test]
    fn only_first_document_is_read() {
        let node = parse("a: 1\n---\nb: 2\n").ok().flatten();
        let Some(Node { kind: NodeKind::Map(entries), .. }) = node else {
            panic!("expected a map");
        };
        assert_eq!(entries.len(), 1);
    }
}
