//! The storage seam, checked from the source rather than from a list written by hand: every
//! SQL statement lives under `src/store`, every table the migrations leave is written by
//! exactly one owner module there, and `docs/architecture.md`'s table → owner map says the
//! same.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Splits SQL (or any text) into lower-case words; punctuation separates them.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '{' || c == '}')).filter(|w| !w.is_empty()).map(str::to_ascii_lowercase).collect()
}

/// The tables one backend's migrations leave, applied in file order (create, drop, rename).
fn tables(backend: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    files_under(&root().join("migrations").join(backend), "sql", &mut files);
    let mut tables = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let code: String = text.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
        for statement in code.split(';') {
            let w = words(statement);
            let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
            let mut i;
            let skip_if = |i: &mut usize, seq: &[&str]| {
                if seq.iter().enumerate().all(|(k, s)| w.get(*i + k).map(String::as_str) == Some(*s)) {
                    *i += seq.len();
                }
            };
            match (at(0), at(1)) {
                ("create", _) => {
                    i = 1;
                    skip_if(&mut i, &["temp"]);
                    skip_if(&mut i, &["temporary"]);
                    if at(i) == "table" {
                        i += 1;
                        skip_if(&mut i, &["if", "not", "exists"]);
                        tables.insert(at(i).to_string());
                    }
                }
                ("drop", "table") => {
                    i = 2;
                    skip_if(&mut i, &["if", "exists"]);
                    tables.remove(at(i));
                }
                ("alter", "table") if at(3) == "rename" && at(4) == "to" => {
                    tables.remove(at(2));
                    tables.insert(at(5).to_string());
                }
                _ => {}
            }
        }
    }
    tables
}

/// The contents of the string literals of Rust source (plain, byte and raw strings), with
/// comments skipped.
fn string_literals(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            // A character literal: '"', '\'' or 'x' (a lifetime has no closing quote).
            b'\'' if b.get(i + 1) == Some(&b'\\') => i += 4,
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 3,
            b'r' if matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let end = (start..b.len()).find(|&k| b[k..].starts_with(&close)).unwrap_or(b.len());
                out.push(src[start..end].to_string());
                i = end + close.len();
            }
            b'"' => {
                let start = i + 1;
                let mut k = start;
                while k < b.len() && b[k] != b'"' {
                    k += if b[k] == b'\\' { 2 } else { 1 };
                }
                out.push(src[start..k.min(b.len())].to_string());
                i = k + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// The SQL statement kinds found in one literal, as (verb, table) pairs; `select` has no table.
fn sql_in(literal: &str) -> Vec<(&'static str, String)> {
    let w = words(literal);
    let mut found = Vec::new();
    for (i, word) in w.iter().enumerate() {
        let next = |k: usize| w.get(i + k).cloned().unwrap_or_default();
        match word.as_str() {
            "insert" => {
                let mut k = 1;
                if next(k) == "or" {
                    k += 2;
                }
                if next(k) == "into" {
                    found.push(("insert", next(k + 1)));
                }
            }
            "update" if next(2) == "set" && next(1) != "do" => found.push(("update", next(1))),
            "delete" if next(1) == "from" => found.push(("delete", next(2))),
            "select" if w[i + 1..].iter().any(|x| x == "from") => found.push(("select", String::new())),
            _ => {}
        }
    }
    found
}

/// The owner module a file under `src/store` belongs to: the file itself, or the folder
/// directly under `src/store` that holds it (`store/ledger/`).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(root().join("src")).unwrap();
    let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.len() > 2 { format!("{}/{}/", parts[0], parts[1]) } else { parts.join("/") }
}

fn rust_sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_under(&root().join("src"), "rs", &mut files);
    files
}

#[test]
fn no_sql_outside_the_store() {
    let store = root().join("src").join("store");
    let mut offenders = Vec::new();
    for file in rust_sources().into_iter().filter(|f| !f.starts_with(&store)) {
        let text = fs::read_to_string(&file).unwrap();
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for marker in ["sqlx::query", "rusqlite"] {
            if text.contains(marker) {
                offenders.push(format!("{rel}: mentions {marker}"));
            }
        }
        for literal in string_literals(&text) {
            if let Some((verb, _)) = sql_in(&literal).first() {
                offenders.push(format!("{rel}: {verb} statement {:?}", literal.chars().take(60).collect::<String>()));
            }
        }
    }
    assert!(offenders.is_empty(), "SQL outside src/store:\n{}", offenders.join("\n"));
}

/// Table → the store modules that write it.
fn writers() -> BTreeMap<String, BTreeSet<String>> {
    let store = root().join("src").join("store");
    let mut writers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_sources().into_iter().filter(|f| f.starts_with(&store)) {
        let text = fs::read_to_string(&file).unwrap();
        for literal in string_literals(&text) {
            for (verb, table) in sql_in(&literal) {
                if verb != "select" && !table.contains('{') {
                    writers.entry(table).or_default().insert(module_of(&file));
                }
            }
        }
    }
    writers
}

#[test]
fn both_backends_have_the_same_tables() {
    assert_eq!(tables("sqlite"), tables("postgres"));
    assert!(tables("sqlite").contains("subscriptions") && !tables("sqlite").contains("subscriptions_0009"));
}

#[test]
fn every_table_has_exactly_one_owner_and_the_architecture_map_says_which() {
    let tables = tables("sqlite");
    let writers = writers();
    let unknown: Vec<_> = writers.keys().filter(|t| !tables.contains(*t)).collect();
    assert!(unknown.is_empty(), "statements write tables no migration creates: {unknown:?}");
    let mut owners = BTreeMap::new();
    let mut problems = Vec::new();
    for table in &tables {
        match writers.get(table).map(|w| w.iter().collect::<Vec<_>>()) {
            Some(w) if w.len() == 1 => {
                owners.insert(table.clone(), w[0].clone());
            }
            Some(w) => problems.push(format!("{table} is written by {w:?}")),
            None => problems.push(format!("{table} is written by no module of src/store")),
        }
    }
    assert!(problems.is_empty(), "tables without exactly one owner:\n{}", problems.join("\n"));

    // docs/architecture.md, section "Who owns which table": | `module` | `table`, `table` |
    let doc = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section = doc.split("## Who owns which table").nth(1).expect("architecture.md has the owner table");
    let mut documented = BTreeMap::new();
    for row in section.lines().take_while(|l| !l.starts_with("## ")).filter(|l| l.starts_with("| `")) {
        let cells: Vec<_> = row.split('|').map(str::trim).collect();
        let module = cells[1].trim_matches('`').trim_start_matches("src/").to_string();
        for table in cells[2].split('`').skip(1).step_by(2).filter(|t| tables.contains(*t)) {
            assert!(documented.insert(table.to_string(), module.clone()).is_none(), "{table} is listed twice in docs/architecture.md");
        }
    }
    assert_eq!(documented, owners, "docs/architecture.md's owner table differs from the code (left: the document, right: the code)");
}

#[test]
fn the_checks_can_fail() {
    // The literal scanner sees SQL on continuation lines, in lower case and in raw strings,
    // and not in comments or prose.
    let src = "let a = \"SELECT x\n   FROM t\"; // \"DELETE FROM t\"\nlet b = r#\"update orders set status = $1\"#; let c = \"select a plan\";";
    let found: Vec<_> = string_literals(src).iter().flat_map(|l| sql_in(l)).collect();
    assert_eq!(found, vec![("select", String::new()), ("update", "orders".to_string())]);
    assert_eq!(sql_in("INSERT OR IGNORE INTO card_events (a) VALUES ($1) ON CONFLICT DO UPDATE SET a = 1"), vec![("insert", "card_events".to_string())]);
}
