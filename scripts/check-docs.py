#!/usr/bin/env python3
"""Checks that the guide in docs/ says what the headers and the examples say.

Run from anywhere (CTest runs it as `docs_match_headers`):
    python3 scripts/check-docs.py [--root REPO]

It prints one line per mismatch,
    docs/FILE.md:LINE: NAME: docs say ... / header says ...
and exits 1 if there is any (or if it checked too little to mean anything),
0 otherwise, after printing how much it checked.  --root checks another
copy of the tree (docs/, include/axon/, examples/, scripts/gen-api.py).

What is checked
===============

1. Declarations in the guide.  Every fenced ```c block of docs/*.md and
   docs/io/*.md (docs/api.md aside: see 3) is split into top-level
   constructs, and every construct that declares an axon name must be the
   header's declaration of that name (include/axon/*.h).  The comparison is
   of C tokens: comments are dropped (a docs page may word its comments
   differently), whitespace does not count, and the AX_API export marker is
   dropped on both sides.  Everything else counts: return and parameter
   types, parameter names, enumerator values, macro bodies, field order.
   For a struct the fields are also compared one by one (every field of the
   header's struct must be in the docs' copy, same type and name, same
   order), and for an enum its enumerators, so that a mismatch names the
   field or the constant.

   A construct declares an axon name when it is (after the rules of
   "Splitting" below):
     - a function prototype: `PREFIX ax_NAME(...);` where PREFIX is one or
       more type words (identifiers that are no statement keyword, `*`) and
       holds no `=`: a call statement (`ax_rt_stop(rt);`, `rc = ax_send(...);`,
       `return ax_x(...);`, `int rc = ax_x(...);`) is none;
     - an inline function shown with its body (`static inline ... ax_NAME(...)
       { ... }`), compared with the header's body; shown as a prototype
       (`static inline T ax_NAME(...);`), it is compared with the header's
       signature only;
     - a `typedef` whose new name starts with `ax_` (plain, struct, enum or
       function pointer);
     - a `struct ax_NAME { ... };` definition;
     - an `enum { ... };` whose enumerators include an `AX_` name; it is the
       header's enum (named or not) that defines its first `AX_` enumerator;
     - a `#define AX_NAME ...` (a function-like macro too; `(` right after
       the name or not counts).
   Anything else (statements, calls, the examples' own types and
   functions, variables of axon types, `#include`) is usage and skipped.
   A declaration of an `ax_`/`AX_` name the headers do not have is a
   mismatch too.

   Splitting.  Comments are removed first (strings and character literals
   are kept intact).  A line starting with `#` is a directive of its own.
   The other tokens are cut into constructs at a `;` outside every bracket,
   or at the `}` that closes a brace opened outside every bracket when that
   brace opens a body: a function's, or a statement's (`if`, `for`,
   `else`, a bare block).  A brace opened after `typedef`, `struct`,
   `union` or `enum`, or after an `=` (an initialiser), belongs to a
   construct that goes on to its `;`.  A stray `}` (a fragment that starts
   inside a body) is dropped, and `...` outside brackets (an elision in a
   fragment) ends the construct it is in, which is then skipped.

   The headers are read with the same tokeniser and splitter, after the
   `#ifdef __cplusplus` wrappers are removed, so both sides are seen the
   same way.

2. Quotes of the examples.  A block right after the line
       <!-- quoted from examples/NAME/main.c -->
   (the marker, then the ```c fence on the next line) must be copied from
   that file: every non-blank line of the block, whitespace-normalised
   (runs of blanks are one space, leading and trailing ones dropped),
   equals a line of the file, in the same order; consecutive block lines
   are consecutive lines of the file (blank lines of either do not count),
   except across an elision line, which stands for any number of lines:
   one that reads `...` (optionally followed by a comment), or a comment
   of its own that starts with `...` (`/* ... */`, `/* ... the rest */`).
   A block may start and end anywhere in the file.  Comments are compared
   here too: a quote is a verbatim copy.  A marker naming a
   missing file, or not followed by a ```c fence, is a mismatch.

3. docs/api.md equals what scripts/gen-api.py generates from the headers
   now.  The generator writes a fixed path, so it runs on a temporary copy
   of scripts/gen-api.py and include/axon/; the tree is not modified.

A run that checks fewer than MIN_DECLARATIONS declarations fails: a checker
that matches nothing must not pass.
"""
import argparse
import difflib
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

MIN_DECLARATIONS = 50

# ---------------------------------------------------------------------------
# Tokens


COMMENT_OR_LITERAL = re.compile(
    r'//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)

TOKEN = re.compile(r"""
    "(?:\\.|[^"\\\n])*"             # string literal
  | '(?:\\.|[^'\\\n])*'             # character literal
  | [A-Za-z_][A-Za-z_0-9]*          # identifier or keyword
  | \.?[0-9](?:[eEpP][+-]|[A-Za-z_0-9.])*   # number
  | \.\.\.|->|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||\+\+|--|[-+*/%&|^]=|\#\#
  | [^\s]                           # any other character
""", re.X)

OPEN, CLOSE = {"(", "[", "{"}, {")", "]", "}"}
OPEN_PAREN, CLOSE_PAREN = {"(", "["}, {")", "]"}

STATEMENT_WORDS = {"return", "if", "else", "while", "for", "do", "switch", "case", "default",
                   "goto", "break", "continue", "sizeof", "_Alignof", "alignof"}


def strip_comments(text):
    """Replaces every comment by a space (keeping its newlines), literals intact."""
    def repl(m):
        s = m.group(0)
        if s.startswith(("//", "/*")):
            return " " + "\n" * s.count("\n")
        return s
    return COMMENT_OR_LITERAL.sub(repl, text)


def lex(text, first_line=1):
    """Splits C text into items: ('pp', text, line) for a directive line (its
    text after the '#', continuation lines joined), ('tok', token, line) for
    every other token.  Comments are gone."""
    items = []
    lines = strip_comments(text).split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = first_line + i
        if line.lstrip().startswith("#"):
            body = line
            while body.endswith("\\") and i + 1 < len(lines):
                i += 1
                body = body[:-1] + " " + lines[i]
            body = body.lstrip()[1:].lstrip()
            items.append(("pp", body, lineno))
        else:
            for m in TOKEN.finditer(line):
                items.append(("tok", m.group(0), lineno))
        i += 1
    return items


def render(tokens):
    """A readable one-line form of a token list (for messages only)."""
    s = " ".join(tokens)
    s = re.sub(r" ([,;)\]])", r"\1", s)
    s = re.sub(r"([(\[]) ", r"\1", s)
    s = re.sub(r" ?(->|\.) ?", r"\1", s)
    s = re.sub(r"\* (?=[A-Za-z_(])", "*", s)
    s = re.sub(r"(\w) \(", r"\1(", s)
    s = re.sub(r"\bif\(|\bfor\(|\bwhile\(|\bswitch\(|\breturn\(", lambda m: m.group(0)[:-1] + " (", s)
    return s


# ---------------------------------------------------------------------------
# Constructs


class Construct:
    def __init__(self, kind, tokens, line):
        self.kind = kind      # 'pp' or 'c'
        self.tokens = tokens  # for 'pp': the directive text; for 'c': a token list
        self.line = line


def split(items):
    """Cuts lexed items into top-level constructs (see "Splitting" above)."""
    out, cur, start = [], [], None
    braces = parens = 0
    body = False  # the open top-level brace is a body: the construct ends at its '}'
    for kind, tok, line in items:
        if kind == "pp":
            out.append(Construct("pp", tok, line))
            continue
        if not cur:
            start = line
        if tok == "..." and braces == 0 and parens == 0:
            cur = []  # an elision: drop the fragment it ends
            continue
        if tok in OPEN_PAREN:
            parens += 1
        elif tok in CLOSE_PAREN:
            parens = max(parens - 1, 0)
        elif tok == "{":
            if braces == 0 and parens == 0:
                body = not (cur and (cur[0] in ("typedef", "struct", "union", "enum") or
                                     "=" in cur))
            braces += 1
        elif tok == "}":
            if braces == 0:
                continue  # a fragment that starts inside a body
            braces -= 1
            if braces == 0 and parens == 0 and body:
                cur.append(tok)
                out.append(Construct("c", cur, start))
                cur, body = [], False
                continue
        cur.append(tok)
        if tok == ";" and braces == 0 and parens == 0:
            out.append(Construct("c", cur, start))
            cur = []
    if cur:
        out.append(Construct("c", cur, start))
    return out


def top_level(tokens):
    """Yields (index, token) of tokens outside every bracket."""
    depth = 0
    for i, t in enumerate(tokens):
        if t in OPEN:
            if depth == 0:
                yield i, t
            depth += 1
        elif t in CLOSE:
            depth -= 1
            if depth == 0:
                yield i, t
        elif depth == 0:
            yield i, t


def is_ident(t):
    return re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", t) is not None


def declared(con):
    """The axon name a construct declares, as (key, kind), or None."""
    if con.kind == "pp":
        m = re.match(r"define\s+(AX_[A-Za-z_0-9]*)", con.tokens)
        return (f"#define {m.group(1)}", "define") if m else None
    t = [x for x in con.tokens if x != "AX_API"]
    if not t:
        return None
    if t[0] == "typedef":
        if t[-1] != ";":
            return None
        name = None
        for i, x in top_level(t):  # a function pointer: typedef R (*name)(...)
            if x == "(" and t[i + 1:i + 2] == ["*"] and i + 2 < len(t) and is_ident(t[i + 2]):
                name = t[i + 2]
                break
        if name is None:
            idents = [x for _, x in top_level(t[:-1]) if is_ident(x)]
            name = idents[-1] if idents else None
        if name and name.startswith("ax_"):
            return (name, "typedef")
        return None
    if t[0] in ("struct", "union") and len(t) > 2 and t[1].startswith("ax_") and t[2] == "{":
        return (f"{t[0]} {t[1]}", "struct")
    if t[0] == "enum":
        names = enumerators(t)
        ax = [n for n in names if n.startswith("AX_")]
        if ax:
            return (f"enum {ax[0]}", "enum")
        return None
    # A function: PREFIX name ( ... ) ;  or  PREFIX name ( ... ) { ... }
    for i, tok in top_level(t):
        if tok == "(":
            if i < 1 or not is_ident(t[i - 1]) or not t[i - 1].startswith("ax_"):
                return None
            prefix = t[:i - 1]
            if not prefix or any(not (p == "*" or (is_ident(p) and p not in STATEMENT_WORDS))
                                 for p in prefix):
                return None
            close = matching(t, i)
            rest = t[close + 1:]
            if rest == [";"] or (rest and rest[0] == "{" and rest[-1] == "}"):
                return (t[i - 1], "function")
            return None
        if tok == "=":
            return None
    return None


def matching(tokens, i):
    """The index of the bracket closing tokens[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j] in pairs:
            depth += 1
        elif tokens[j] in pairs.values():
            depth -= 1
            if depth == 0:
                return j
    return len(tokens) - 1


def members(tokens, sep):
    """The members of the first top-level {...} of tokens, cut at sep
    (';' for struct fields, ',' for enumerators), each a token list."""
    try:
        open_ = tokens.index("{")
    except ValueError:
        return []
    close = matching(tokens, open_)
    out, cur, depth = [], [], 0
    for t in tokens[open_ + 1:close]:
        if t in OPEN:
            depth += 1
        elif t in CLOSE:
            depth -= 1
        if t == sep and depth == 0:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def enumerators(tokens):
    return [m[0] for m in members(tokens, ",") if m and is_ident(m[0])]


def member_name(m):
    """The name a struct field or an enumerator declares."""
    for i in range(len(m) - 2):
        if m[i] == "(" and m[i + 1] == "*" and is_ident(m[i + 2]):
            return m[i + 2]
    if m and is_ident(m[0]) and (len(m) == 1 or m[1] == "="):
        return m[0]  # an enumerator
    idents = [x for _, x in top_level(m) if is_ident(x)]
    return idents[-1] if idents else "?"


def field_list(m):
    """A struct field, split when it declares several names (`int a, b;`)."""
    parts, cur, depth = [], [], 0
    for t in m:
        if t in OPEN:
            depth += 1
        elif t in CLOSE:
            depth -= 1
        if t == "," and depth == 0:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    if len(parts) == 1:
        return [m]
    # The type words: the first declarator without its name and its stars.
    first = parts[0]
    base = first[:-1]
    while base and base[-1] == "*":
        base = base[:-1]
    return [first] + [base + p for p in parts[1:]]


def comparable(con):
    """The tokens compared: AX_API dropped; for a directive, its tokens
    after `define`, the name marked when a '(' follows it directly."""
    if con.kind == "pp":
        m = re.match(r"define\s+([A-Za-z_0-9]+)(\()?(.*)", con.tokens)
        name, paren, rest = m.group(1), m.group(2), m.group(3)
        return ["#define", name + ("(" if paren else "")] + [
            x.group(0) for x in TOKEN.finditer(rest)]
    return [x for x in con.tokens if x != "AX_API"]


# ---------------------------------------------------------------------------
# The headers


def header_index(root):
    """Maps every declared axon name of include/axon/*.h to a list of
    (path, construct)."""
    index = {}
    for path in sorted((root / "include" / "axon").glob("*.h")):
        text = path.read_text()
        # The C++ wrappers (extern "C" { ... }) are no declarations.
        text = re.sub(r"#ifdef __cplusplus\n.*?#endif[^\n]*", lambda m: "\n" * m.group(0).count("\n"),
                      text, flags=re.S)
        for con in split(lex(text)):
            d = declared(con)
            if d:
                index.setdefault(d[0], []).append((path, con))
    return index


# ---------------------------------------------------------------------------
# Comparing one declaration


def diff_members(doc_tokens, head_tokens, kind):
    """Messages naming the fields or enumerators that differ, or []."""
    sep = ";" if kind == "fields" else ","
    dm = [m for m in members(doc_tokens, sep) if m]
    hm = [m for m in members(head_tokens, sep) if m]
    if kind == "fields":
        dm = [f for m in dm for f in field_list(m)]
        hm = [f for m in hm for f in field_list(m)]
    dnames = [member_name(m) for m in dm]
    hnames = [member_name(m) for m in hm]
    what = "field" if kind == "fields" else "constant"
    msgs = []
    dby = dict(zip(dnames, dm))
    hby = dict(zip(hnames, hm))
    missing = [render(m) for n, m in zip(hnames, hm) if n not in dby]
    if missing:
        msgs.append(f"docs lack the {what}{'s' if len(missing) > 1 else ''} "
                    + "; ".join(f"`{x}`" for x in missing))
    extra = [render(m) for n, m in zip(dnames, dm) if n not in hby]
    if extra:
        msgs.append(f"docs have {'' if len(extra) > 1 else 'a '}{what}{'s' if len(extra) > 1 else ''} "
                    "the header lacks: "
                    + "; ".join(f"`{x}`" for x in extra))
    for n in dnames:
        if n in hby and dby[n] != hby[n]:
            msgs.append(f"{what} {n}: docs say `{render(dby[n])}` / header says `{render(hby[n])}`")
    common_d = [n for n in dnames if n in hby]
    common_h = [n for n in hnames if n in dby]
    if common_d != common_h:
        msgs.append(f"{what}s in another order: docs say {', '.join(common_d)} / "
                    f"header says {', '.join(common_h)}")
    return msgs


def signature(tokens):
    """An inline function's tokens up to its body, with ';' for the body."""
    for i, t in top_level(tokens):
        if t == "{":
            return tokens[:i] + [";"]
    return tokens


def compare(con, key, kind, candidates):
    """Messages for a docs construct against the header's declaration(s)."""
    doc = comparable(con)
    heads = []
    for _, hcon in candidates:
        head = comparable(hcon)
        if kind == "function" and doc[-1] == ";" and head[-1] == "}":
            head = signature(head)
        if doc == head:
            return []
        heads.append(head)
    head = heads[0]
    if kind in ("struct", "typedef") and "{" in doc and "{" in head:
        msgs = diff_members(doc, head, "fields" if doc[0] != "enum" and "enum" not in doc[:2]
                            else "constants")
        outside = lambda t: t[:t.index("{")] + t[matching(t, t.index("{")) + 1:]
        if outside(doc) != outside(head):
            msgs.append(f"docs say `{render(outside(doc))}` / header says `{render(outside(head))}`")
        if msgs:
            return msgs
    if kind == "enum":
        msgs = diff_members(doc, head, "constants")
        if msgs:
            return msgs
    return [f"docs say `{render(doc)}` / header says `{render(head)}`"]


# ---------------------------------------------------------------------------
# The docs


FENCE = re.compile(r"^\s*```")
MARKER = re.compile(r"^\s*<!--\s*quoted from\s+(\S+)\s*-->\s*$")


def code_blocks(path):
    """Yields (first_line, lines, marker_or_None, marker_line) for every ```c block,
    and reports markers that precede no ```c block."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if m:
            if i + 1 >= len(lines) or lines[i + 1].strip() != "```c":
                yield (i + 1, None, m.group(1), i + 1)
        if FENCE.match(lines[i]):
            lang = lines[i].strip()[3:].strip()
            j = i + 1
            while j < len(lines) and not FENCE.match(lines[j]):
                j += 1
            if lang == "c":
                prev = MARKER.match(lines[i - 1]) if i > 0 else None
                yield (i + 2, lines[i + 1:j], prev.group(1) if prev else None, i)
            i = j
        i += 1


ELISION = re.compile(r"^(?:\.\.\.(?:\s*/\*.*\*/)?|/\*\s*\.\.\..*\*/)$")


def norm(line):
    return re.sub(r"\s+", " ", line).strip()


def check_quote(rel, first, block, source_path, source_name):
    """Messages for a quoted block (see 2. above); returns (messages, lines checked)."""
    if not source_path.is_file():
        return [f"{rel}:{first - 1}: {source_name}: the marker names a file that does not exist"], 0
    src = [(n + 1, norm(l)) for n, l in enumerate(source_path.read_text().split("\n"))]
    src = [(n, l) for n, l in src if l]
    segments, cur = [], []
    for k, line in enumerate(block):
        s = norm(line)
        if not s:
            continue
        if ELISION.match(s):
            if cur:
                segments.append(cur)
            cur = []
        else:
            cur.append((first + k, s))
    if cur:
        segments.append(cur)
    pos, checked = 0, 0
    for seg in segments:
        found = None
        for p in range(pos, len(src) - len(seg) + 1):
            if all(src[p + q][1] == seg[q][1] for q in range(len(seg))):
                found = p
                break
        if found is None:
            # Name the first line that breaks the run: the longest prefix of the
            # segment that is in the file, then the line after it.
            best_len, best_at = 0, pos
            for p in range(pos, len(src)):
                q = 0
                while q < len(seg) and p + q < len(src) and src[p + q][1] == seg[q][1]:
                    q += 1
                if q > best_len:
                    best_len, best_at = q, p
            bad_line, bad = seg[best_len]
            if best_len:
                exp_n, exp = src[best_at + best_len] if best_at + best_len < len(src) else (0, "(end of file)")
                where = f"{source_name}:{exp_n} says `{exp}`"
            else:
                close = difflib.get_close_matches(bad, [l for _, l in src[pos:]], n=1, cutoff=0.6)
                where = (f"{source_name} has no such line after line {src[pos - 1][0] if pos else 0}"
                         + (f" (closest: `{close[0]}`)" if close else ""))
            return [f"{rel}:{bad_line}: quote of {source_name}: docs say `{bad}` / {where}"], checked
        checked += len(seg)
        pos = found + len(seg)
    return [], checked


def check_docs(root, index):
    problems, decls, quotes, quote_lines = [], 0, 0, 0
    pages = sorted((root / "docs").glob("*.md")) + sorted((root / "docs" / "io").glob("*.md"))
    for page in pages:
        if page.name == "api.md" and page.parent.name == "docs":
            continue
        rel = page.relative_to(root).as_posix()
        for first, block, source, marker_line in code_blocks(page):
            if block is None:
                problems.append(f"{rel}:{marker_line}: {source}: a quote marker must be the line "
                                "right before a ```c fence")
                continue
            if source is not None:
                msgs, n = check_quote(rel, first, block, root / source, source)
                problems += msgs
                quotes += 1
                quote_lines += n
            for con in split(lex("\n".join(block), first)):
                d = declared(con)
                if not d:
                    continue
                key, kind = d
                decls += 1
                if key not in index:
                    problems.append(f"{rel}:{con.line}: {key}: docs say `{render(comparable(con))}` / "
                                    "header says nothing: no such declaration in include/axon/*.h")
                    continue
                for msg in compare(con, key, kind, index[key]):
                    problems.append(f"{rel}:{con.line}: {key}: {msg}")
    return problems, decls, quotes, quote_lines


def check_api(root):
    """docs/api.md against a fresh run of scripts/gen-api.py on a copy."""
    api = root / "docs" / "api.md"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "scripts").mkdir()
        (tmp / "docs").mkdir()
        shutil.copy(root / "scripts" / "gen-api.py", tmp / "scripts" / "gen-api.py")
        shutil.copytree(root / "include", tmp / "include")
        run = subprocess.run([sys.executable, str(tmp / "scripts" / "gen-api.py")],
                             capture_output=True, text=True)
        if run.returncode != 0:
            return [f"scripts/gen-api.py failed: {run.stderr.strip()}"]
        fresh = (tmp / "docs" / "api.md").read_text().split("\n")
    current = api.read_text().split("\n") if api.is_file() else []
    if fresh == current:
        return []
    for n, (a, b) in enumerate(zip(current, fresh)):
        if a != b:
            break
    else:
        n = min(len(current), len(fresh))
    a = current[n] if n < len(current) else "(end of file)"
    b = fresh[n] if n < len(fresh) else "(end of file)"
    return [f"docs/api.md:{n + 1}: api.md: docs say `{a}` / scripts/gen-api.py generates `{b}` "
            "(run python3 scripts/gen-api.py)"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parent.parent,
                    help="the tree to check (default: this script's repository)")
    args = ap.parse_args()
    root = args.root.resolve()
    index = header_index(root)
    problems, decls, quotes, quote_lines = check_docs(root, index)
    problems += check_api(root)
    for p in problems:
        print(p)
    print(f"check-docs: {decls} declarations against {sum(len(v) for v in index.values())} "
          f"in the headers, {quotes} quotes ({quote_lines} lines) of the examples, docs/api.md: "
          f"{len(problems)} mismatch(es)")
    if decls < MIN_DECLARATIONS:
        print(f"check-docs: FAIL: only {decls} declarations found in the docs' code blocks "
              f"(at least {MIN_DECLARATIONS} expected): the checker matches nothing?")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
