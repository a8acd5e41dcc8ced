//! The configuration the README shows is one this crate accepts as it is.

use wslink_launcher::Config;

#[test]
fn the_readme_launcher_config_parses() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("\n## Launcher\n")
        .nth(1)
        .expect("README.md has a Launcher section");
    let block = section
        .split("```jsonc\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a jsonc block in the Launcher section");
    let config = Config::parse(block).expect("the README's config parses");
    assert!(config.warnings().is_empty(), "{:?}", config.warnings());
    assert!(config.configuration.proxy.is_some());
    assert_eq!(config.apps.len(), 1);
}
