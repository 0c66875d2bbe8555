//! A reader of OpenCV FileStorage files, YAML, XML and JSON, as `cv::FileStorage`
//! writes them (OpenCV core, "XML/YAML/JSON file storages"): a top-level
//! map whose values are numbers, strings, sequences, maps and matrices
//! (`!!opencv-matrix` in YAML, `type_id="opencv-matrix"` in XML, with `rows`,
//! `cols`, `dt` and row-major `data`).
//!
//! It parses with memory-safe, well-kept parsers (`serde_yaml_ng` on libyaml's
//! grammar, `roxmltree`) rather than OpenCV's own reader: OpenCV 4.6's reader
//! crashes with SIGSEGV on some malformed XML and loops for over ten seconds on
//! some malformed YAML (both found by `fuzz/`'s `opencv_xml` and
//! `opencv_yaml` targets), and a crash cannot be turned into an error.

use std::path::Path;

/// One value of a FileStorage file.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A number (integers too).
    Number(f64),
    /// A string.
    Text(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A map, in file order.
    Map(Vec<(String, Node)>),
    /// A single-channel matrix: `rows × cols` values, row by row.
    Matrix {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// `rows · cols` values, row-major.
        data: Vec<f64>,
    },
}

impl Node {
    /// The number this node holds (a number, or a string that reads as one).
    pub fn number(&self) -> Option<f64> {
        match self {
            Node::Number(v) => Some(*v),
            Node::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The `i`-th element of a sequence.
    pub fn at(&self, i: usize) -> Option<&Node> {
        match self {
            Node::Seq(v) => v.get(i),
            _ => None,
        }
    }
}

/// The top-level map of a file: YAML or JSON (`%YAML:1.0` or `%YAML 1.0` first
/// line, as OpenCV writes it) or XML (`<opencv_storage>` root), told apart by
/// the first non-blank character (`<` is XML).
///
/// # Errors
/// What the parser reports (with line and column where it gives them), or
/// what is not FileStorage (a top level that is not a map, a matrix whose
/// `data` does not hold `rows · cols · channels` numbers).
pub fn read(path: &Path) -> Result<Vec<(String, Node)>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    if text.trim_start().starts_with('<') {
        read_xml(&text)
    } else {
        read_yaml(&text)
    }
}

/// `dt` of a matrix: `d`, `f`, `i`, `u`, `s`, `w`, `c`, optionally after a
/// channel count (`3d`). Returns the channel count.
fn channels(dt: &str) -> Result<usize, String> {
    let dt = dt.trim();
    let digits: String = dt.chars().take_while(char::is_ascii_digit).collect();
    let kind = &dt[digits.len()..];
    if !matches!(kind, "d" | "f" | "i" | "u" | "s" | "w" | "c" | "h") {
        return Err(format!(
            "matrix `dt` \"{dt}\" is not an OpenCV element type"
        ));
    }
    if digits.is_empty() {
        return Ok(1);
    }
    digits
        .parse()
        .ok()
        .filter(|n| (1..=4).contains(n))
        .ok_or_else(|| format!("matrix `dt` \"{dt}\": 1 to 4 channels"))
}

fn matrix(
    rows: Option<f64>,
    cols: Option<f64>,
    dt: Option<String>,
    data: Vec<f64>,
) -> Result<Node, String> {
    let count = |v: Option<f64>, name: &str| -> Result<usize, String> {
        v.filter(|v| v.fract() == 0.0 && (0.0..=1e6).contains(v))
            .map(|v| v as usize)
            .ok_or_else(|| format!("matrix `{name}` missing or not a count"))
    };
    let (rows, cols) = (count(rows, "rows")?, count(cols, "cols")?);
    let channels = channels(dt.as_deref().unwrap_or("d"))?;
    if channels != 1 {
        return Err(format!(
            "a matrix of {channels} channels: calibrations are single-channel"
        ));
    }
    if data.len() != rows * cols {
        return Err(format!(
            "matrix {rows}x{cols} with {} values in `data`",
            data.len()
        ));
    }
    Ok(Node::Matrix { rows, cols, data })
}

fn read_yaml(text: &str) -> Result<Vec<(String, Node)>, String> {
    // OpenCV writes `%YAML:1.0`, which YAML 1.1 parsers reject: the
    // directive line goes (it declares nothing the parser needs).
    let body = match text.trim_start().strip_prefix("%YAML") {
        Some(rest) => rest.split_once('\n').map_or("", |(_, after)| after),
        None => text,
    };
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(body).map_err(|e| e.to_string())?;
    match from_yaml(value)? {
        Node::Map(m) => Ok(m),
        _ => Err("the top level is not a map of names to values".into()),
    }
}

fn from_yaml(value: serde_yaml_ng::Value) -> Result<Node, String> {
    use serde_yaml_ng::Value;
    Ok(match value {
        Value::Null => Node::Text(String::new()),
        Value::Bool(b) => Node::Number(if b { 1.0 } else { 0.0 }),
        Value::Number(n) => Node::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Node::Text(s),
        Value::Sequence(s) => Node::Seq(s.into_iter().map(from_yaml).collect::<Result<_, _>>()?),
        Value::Mapping(m) => {
            let fields = m
                .into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        other => return Err(format!("a map key that is not a name: {other:?}")),
                    };
                    Ok((key, from_yaml(v)?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            // `!!opencv-matrix` is a secondary-handle tag, which the parser
            // resolves away: a matrix is told by its four fields (JSON
            // storages, which read as YAML, add `"type_id": "opencv-matrix"`).
            let matrix_type = fields
                .iter()
                .any(|(k, v)| k == "type_id" && *v == Node::Text("opencv-matrix".into()));
            let mut keys: Vec<&str> = fields
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| !(matrix_type && *k == "type_id"))
                .collect();
            keys.sort_unstable();
            if keys == ["cols", "data", "dt", "rows"] {
                yaml_matrix(&fields)?
            } else {
                Node::Map(fields)
            }
        }
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            match tag.trim_start_matches('!') {
                "opencv-matrix" => match from_yaml(t.value)? {
                    m @ Node::Matrix { .. } => m,
                    _ => return Err("`!!opencv-matrix` without rows, cols, dt and data".into()),
                },
                other => return Err(format!("unknown tag `!!{other}`")),
            }
        }
    })
}

/// A matrix from the fields of a YAML `!!opencv-matrix`.
fn yaml_matrix(fields: &[(String, Node)]) -> Result<Node, String> {
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let data = match get("data") {
        Some(Node::Seq(v)) => v
            .iter()
            .map(|n| n.number().ok_or("matrix `data` holds a non-number"))
            .collect::<Result<Vec<f64>, _>>()?,
        _ => return Err("matrix without a `data` sequence".into()),
    };
    let dt = match get("dt") {
        Some(Node::Text(s)) => Some(s.clone()),
        Some(_) => return Err("matrix `dt` is not a string".into()),
        None => None,
    };
    matrix(
        get("rows").and_then(Node::number),
        get("cols").and_then(Node::number),
        dt,
        data,
    )
}

fn read_xml(text: &str) -> Result<Vec<(String, Node)>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if root.tag_name().name() != "opencv_storage" {
        return Err(format!(
            "the root element is <{}>, not <opencv_storage>",
            root.tag_name().name()
        ));
    }
    match from_xml(root)? {
        Node::Map(m) => Ok(m),
        _ => Ok(Vec::new()),
    }
}

/// Splits an XML text node the way OpenCV does: whitespace-separated
/// tokens, a `"…"` token kept whole.
fn tokens(text: &str) -> Vec<Node> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (token, after) = if let Some(quoted) = rest.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((inside, after)) => (Node::Text(inside.to_string()), after),
                None => (Node::Text(quoted.to_string()), ""),
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let word = &rest[..end];
            let node = word
                .parse::<f64>()
                .map_or_else(|_| Node::Text(word.to_string()), Node::Number);
            (node, &rest[end..])
        };
        out.push(token);
        rest = after.trim_start();
    }
    out
}

fn from_xml(node: roxmltree::Node) -> Result<Node, String> {
    let children: Vec<roxmltree::Node> = node.children().filter(|c| c.is_element()).collect();
    if node.attribute("type_id") == Some("opencv-matrix") {
        let get = |k: &str| children.iter().find(|c| c.tag_name().name() == k);
        let number = |k: &str| {
            get(k)
                .and_then(|c| c.text())
                .and_then(|t| t.trim().parse::<f64>().ok())
        };
        let data = tokens(get("data").and_then(|c| c.text()).unwrap_or(""))
            .iter()
            .map(|n| n.number().ok_or("matrix `data` holds a non-number"))
            .collect::<Result<Vec<f64>, _>>()?;
        let dt = get("dt").and_then(|c| c.text()).map(str::to_string);
        return matrix(number("rows"), number("cols"), dt, data);
    }
    if let Some(t) = node.attribute("type_id") {
        return Err(format!("unknown type_id \"{t}\""));
    }
    if children.is_empty() {
        let mut items = tokens(node.text().unwrap_or(""));
        return Ok(match items.len() {
            0 => Node::Text(String::new()),
            1 => items.remove(0),
            _ => Node::Seq(items),
        });
    }
    // OpenCV writes the elements of a sequence as `<_>`.
    if children.iter().all(|c| c.tag_name().name() == "_") {
        return Ok(Node::Seq(
            children
                .into_iter()
                .map(from_xml)
                .collect::<Result<_, _>>()?,
        ));
    }
    Ok(Node::Map(
        children
            .into_iter()
            .map(|c| Ok((c.tag_name().name().to_string(), from_xml(c)?)))
            .collect::<Result<_, String>>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str, ext: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(ext).tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn yaml_and_xml_of_the_same_storage_read_the_same() {
        let yaml = "%YAML:1.0\n---\nM1: !!opencv-matrix\n   rows: 2\n   cols: 2\n   dt: d\n   data: [ 500., 0., 1.5e2, 1 ]\nimage_width: 640\nimageSize: [ 640, 480 ]\nname: \"plumb bob\"\n";
        let xml = "<?xml version=\"1.0\"?>\n<opencv_storage>\n<M1 type_id=\"opencv-matrix\"><rows>2</rows><cols>2</cols><dt>d</dt><data>\n  500. 0. 1.5e2 1</data></M1>\n<image_width>640</image_width>\n<imageSize>640 480</imageSize>\n<name>\"plumb bob\"</name>\n</opencv_storage>\n";
        let json = "{\n  \"M1\": { \"type_id\": \"opencv-matrix\", \"rows\": 2, \"cols\": 2, \"dt\": \"d\",\n    \"data\": [ 500.0, 0.0, 1.5e2, 1 ] },\n  \"image_width\": 640,\n  \"imageSize\": [ 640, 480 ],\n  \"name\": \"plumb bob\"\n}\n";
        let a = read(write(yaml, ".yml").path()).unwrap();
        let b = read(write(xml, ".xml").path()).unwrap();
        let c = read(write(json, ".json").path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(
            a[0],
            (
                "M1".to_string(),
                Node::Matrix {
                    rows: 2,
                    cols: 2,
                    data: vec![500.0, 0.0, 150.0, 1.0]
                }
            )
        );
        assert_eq!(a[2].1.at(1).and_then(Node::number), Some(480.0));
        assert_eq!(a[3].1, Node::Text("plumb bob".into()));
    }

    #[test]
    fn what_opencv_crashed_or_hung_on_is_an_error() {
        // Reduced from the fuzz targets' findings: a broken XML declaration
        // (OpenCV 4.6: SIGSEGV) and a flow sequence left open (a hang).
        let xml =
            "<?xml version=\0\0\"1.0\"?>\n<o\"1.0\"?encv-matrix\"><rows>3</ro>\n<opencv_storage>\n";
        assert!(read(write(xml, ".xml").path()).is_err());
        let yaml = "%YAML:1.0\n---\nD1: !!opencv-matrix\n   rows: 1\n   cols: 5\n   dt: d\n   data: [ 0.1,\nM1: !!opencv-matrix\n   rows: 3\n";
        assert!(read(write(yaml, ".yml").path()).is_err());
        let short =
            "%YAML:1.0\nT: !!opencv-matrix\n   rows: 3\n   cols: 1\n   dt: d\n   data: [ 1, 2 ]\n";
        let e = read(write(short, ".yml").path()).unwrap_err();
        assert!(e.contains("3x1 with 2 values"), "{e}");
    }
}
