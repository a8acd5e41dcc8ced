//! The directory the server serves: the page plus the browser client.
//!
//! The server serves one content directory, but the page needs three
//! things that live in three places: its own files (`www/`), the TypeScript
//! client's build (`js-client/dist/src/`, found from its package.json) and
//! that client's one dependency,
//! `@msgpack/msgpack` (in `js-client/node_modules/`). At start we copy the
//! three into a fresh temporary directory, laid out as the page's import
//! map expects:
//!
//! ```text
//! index.html, app.js, ...        from www/
//! wslink-client/index.js, ...    the client's build (js-client/dist/src/)
//! vendor/msgpack/...             @msgpack/msgpack's ESM build
//! vendor/msgpack.mjs             re-exports it (a fixed name for the import map)
//! ```
//!
//! Copying (a few hundred kB) rather than linking works on every OS and
//! needs no build step of the example's own; the page is then a plain
//! static site with no bundler. The directory is removed on exit.

use std::io;
use std::path::{Path, PathBuf};

/// The assembled directory; removed when dropped.
pub struct Site {
    /// Where it is.
    pub dir: PathBuf,
    /// What is missing for the page to work (empty when nothing is).
    pub missing: Vec<String>,
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        // `metadata` follows symlinks, as serving the original would.
        if std::fs::metadata(entry.path())?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn read_manifest(package: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(package.join("package.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The ESM entry file of an installed `@msgpack/msgpack`: its package.json's
/// `module` field (`dist.esm/index.mjs` in 3.x, `dist.es5+esm/index.mjs` in 2.x).
fn msgpack_entry(package: &Path) -> Option<PathBuf> {
    let manifest = read_manifest(package)?;
    let entry = package.join(manifest.get("module")?.as_str()?);
    entry.is_file().then_some(entry)
}

/// The built ES module entry of the client package: package.json's
/// `exports["."].import`, else `module`, else `main` (`dist/src/index.js`
/// today); `dist/index.js` if the manifest says nothing usable.
fn client_entry(package: &Path) -> Option<PathBuf> {
    let manifest = read_manifest(package);
    let declared = manifest.as_ref().and_then(|m| {
        let export = m.get("exports").and_then(|e| {
            let dot = e.get(".").unwrap_or(e);
            dot.as_str()
                .or_else(|| dot.get("import").and_then(|i| i.as_str()))
                .or_else(|| dot.get("default").and_then(|i| i.as_str()))
        });
        export
            .or_else(|| m.get("module").and_then(|v| v.as_str()))
            .or_else(|| m.get("main").and_then(|v| v.as_str()))
            .map(str::to_owned)
    });
    [declared, Some("dist/index.js".to_owned())]
        .into_iter()
        .flatten()
        .map(|rel| package.join(rel))
        .find(|p| p.is_file())
}

/// Assembles the site from the page directory `www` and the client's
/// package directory `js_client`.
pub fn assemble(www: &Path, js_client: &Path) -> io::Result<Site> {
    let dir = std::env::temp_dir().join(format!("wslink-image-stream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut site = Site {
        dir,
        missing: Vec::new(),
    };
    copy_dir(www, &site.dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot copy the page from {}: {e}", www.display()),
        )
    })?;

    // The directory of the client's entry module goes to wslink-client/; the
    // page imports wslink-client/index.js.
    match client_entry(js_client) {
        Some(entry) => {
            let entry_dir = entry.parent().unwrap_or(js_client);
            let target = site.dir.join("wslink-client");
            copy_dir(entry_dir, &target)?;
            let index = target.join("index.js");
            if !index.exists() {
                let file = entry
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                std::fs::write(index, format!("export * from \"./{file}\";\n"))?;
            }
        }
        None => site.missing.push(format!(
            "the built client in {} (its package.json entry, e.g. dist/src/index.js)",
            js_client.display()
        )),
    }

    let msgpack = js_client.join("node_modules/@msgpack/msgpack");
    match msgpack_entry(&msgpack) {
        Some(entry) => {
            let entry_dir = entry.parent().unwrap_or(&msgpack);
            let vendor = site.dir.join("vendor");
            copy_dir(entry_dir, &vendor.join("msgpack"))?;
            let file = entry
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::write(
                vendor.join("msgpack.mjs"),
                format!("export * from \"./msgpack/{file}\";\n"),
            )?;
        }
        None => site
            .missing
            .push(format!("{} (its ESM build)", msgpack.display())),
    }
    Ok(site)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_page_client_and_msgpack() {
        let root =
            std::env::temp_dir().join(format!("image-stream-site-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let www = root.join("www");
        let client = root.join("js-client");
        let msgpack = client.join("node_modules/@msgpack/msgpack");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::create_dir_all(client.join("dist/src/sub")).unwrap();
        std::fs::write(
            client.join("package.json"),
            r#"{"name":"wslink-client","exports":{".":{"types":"./dist/src/index.d.ts","import":"./dist/src/index.js"}}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(msgpack.join("dist.esm")).unwrap();
        std::fs::write(www.join("index.html"), "<p>page</p>").unwrap();
        std::fs::write(client.join("dist/src/index.js"), "export {};").unwrap();
        std::fs::write(client.join("dist/src/sub/x.js"), "export {};").unwrap();
        std::fs::write(
            msgpack.join("package.json"),
            r#"{"name":"@msgpack/msgpack","module":"./dist.esm/index.mjs"}"#,
        )
        .unwrap();
        std::fs::write(msgpack.join("dist.esm/index.mjs"), "export {};").unwrap();

        let site = assemble(&www, &client).unwrap();
        assert!(site.missing.is_empty(), "{:?}", site.missing);
        let dir = site.dir.clone();
        assert!(dir.join("index.html").is_file());
        assert!(dir.join("wslink-client/index.js").is_file());
        assert!(dir.join("wslink-client/sub/x.js").is_file());
        assert!(dir.join("vendor/msgpack/index.mjs").is_file());
        assert_eq!(
            std::fs::read_to_string(dir.join("vendor/msgpack.mjs")).unwrap(),
            "export * from \"./msgpack/index.mjs\";\n"
        );
        drop(site);
        assert!(!dir.exists(), "the site is removed on drop");

        // Without the client build: still serves the page, says what is missing.
        std::fs::remove_file(client.join("dist/src/index.js")).unwrap();
        let site = assemble(&www, &client).unwrap();
        assert_eq!(site.missing.len(), 1, "{:?}", site.missing);
        drop(site);
        let _ = std::fs::remove_dir_all(&root);
    }
}
