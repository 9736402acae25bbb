//! How deeply a YAML or JSON text nests, found without parsing it.
//!
//! Parsers do work that grows faster than the text on deeply nested input (a 200 KB text
//! nested 100,000 levels deep took a YAML parser 25 s), and a deep value is recursive to
//! drop. So every definition and bundle is scanned first, in one linear pass over its lines:
//! flow collections (`[`, `{`, JSON) are counted outside quoted strings and plain scalars,
//! and block collections by their indentation levels and `- ` / `? ` indicators. The count is
//! an estimate (a block sequence under a key counts one level less than it is) but it is
//! never fooled by brackets inside strings, comments or block scalars (`|`, `>`).

/// Checks that `text` nests at most `max` levels deep; otherwise says where it goes deeper.
pub fn check(text: &str, max: usize) -> Result<(), String> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    // An open quoted scalar that continues on the next line.
    let mut quote: Option<u8> = None;
    // The indentation of the line that opened a block scalar; more indented lines are text.
    let mut block_scalar: Option<usize> = None;
    for (number, line) in text.lines().enumerate() {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|&&b| b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut depth_here = 0;
        let mut i = indent;
        let mut value_start = true;
        if quote.is_none() && flow == 0 {
            if blank || bytes[indent] == b'#' {
                continue;
            }
            while indents.last().is_some_and(|&top| top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            // `- - - x` nests three sequences on one line.
            let mut dashes = 0;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'?')
                && bytes.get(i + 1).is_none_or(|b| *b == b' ')
            {
                dashes += 1;
                i += 2;
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            depth_here = indents.len() + dashes;
        }
        while i < bytes.len() {
            let b = bytes[i];
            if let Some(q) = quote {
                match b {
                    b'\\' if q == b'"' => i += 1,
                    b'\'' if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 1,
                    _ if b == q => {
                        quote = None;
                        value_start = false;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            match b {
                b'#' if i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t' => break,
                b'\'' | b'"' if value_start => quote = Some(b),
                b'[' | b'{' if flow > 0 || value_start => {
                    flow += 1;
                    value_start = true;
                    depth_here = depth_here.max(indents.len() + flow);
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    value_start = false;
                }
                b',' if flow > 0 => value_start = true,
                b':' if bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') => value_start = true,
                b'|' | b'>' if flow == 0 && value_start => {
                    block_scalar = Some(indent);
                    break;
                }
                b'&' | b'!' if value_start => {
                    // An anchor or tag before a value: skip it, the value starts after it.
                    while i < bytes.len() && bytes[i] != b' ' {
                        i += 1;
                    }
                }
                b' ' | b'\t' => {}
                _ => value_start = false,
            }
            i += 1;
        }
        let depth = depth_here.max(indents.len() + flow);
        if depth > max {
            return Err(format!(
                "line {}: the document nests more than {max} levels deep (limits.nesting_depth); \
                 flatten it",
                number + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn deep_flow_nesting_is_refused_without_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = check(&deep, 128).unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
        let json = format!("{{\"a\": {}1{}}}", "{\"b\": ".repeat(200), "}".repeat(200));
        assert!(check(&json, 128).is_err());
        assert!(check(&json, 300).is_ok());
    }

    #[test]
    fn deep_block_nesting_is_refused() {
        let dashes = format!("{}x\n", "- ".repeat(200));
        assert!(check(&dashes, 128).is_err());
        let mut indented = String::new();
        for level in 0..200 {
            indented.push_str(&format!("{}k{level}:\n", " ".repeat(level)));
        }
        assert!(check(&indented, 128).is_err());
    }

    #[test]
    fn brackets_in_strings_scalars_and_comments_do_not_count() {
        let yaml = r#"
id: w  # [[[[ a comment
steps:
- name: A
  plugin: echo
  input:
    quoted: "[[[[[[[[[[ \" [[["
    single: '{{{{{{{ '' {{{{'
    plain: a[b]{c}[[[[[[[[[[[[
    script: |
      if [[ [[ [[ [[ [[ [[ [[ [[ ]]; then
      {{{{{{{{{{{{{{{{{{{{
    flow: [1, [2, {a: "]]]]"}], 3]
outputs: {x: "{{ steps.A.output }}"}
"#;
        check(yaml, 6).unwrap();
        assert!(check(yaml, 3).is_err());
    }
}
