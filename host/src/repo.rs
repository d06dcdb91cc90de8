//! The model repository: each subfolder holding a `model.onnx` is a model named after it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A model found in the repository.
#[derive(Clone, Debug)]
pub struct ModelSource {
    /// The folder's name.
    pub name: String,
    /// The folder.
    pub dir: PathBuf,
}

impl ModelSource {
    /// The key-value stores the model's `features.toml` looks fields up in, sorted.
    pub fn lookup_stores(&self) -> anyhow::Result<Vec<String>> {
        let spec = self.dir.join("features.toml");
        if !spec.is_file() {
            return Ok(vec![]);
        }
        let mut stores: Vec<String> = crate::offline::read_spec(&spec)?
            .lookups()
            .into_iter()
            .map(|g| g.store)
            .collect();
        stores.sort();
        stores.dedup();
        Ok(stores)
    }
}

/// Lists the models of `repo`, sorted by name.
pub fn scan(repo: &Path) -> anyhow::Result<Vec<ModelSource>> {
    let entries = std::fs::read_dir(repo)
        .with_context(|| format!("reading the model repository {}", repo.display()))?;
    let mut models = Vec::new();
    for entry in entries {
        let dir = entry?.path();
        if !dir.join("model.onnx").is_file() {
            continue;
        }
        models.push(source(&dir)?);
    }
    if models.is_empty() {
        bail!(
            "no model found in {}: expected subfolders holding model.onnx",
            repo.display()
        );
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(models)
}

/// The model a folder holds, named after it.
pub fn source(dir: &Path) -> anyhow::Result<ModelSource> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("no model folder {}", dir.display()))?;
    if !dir.join("model.onnx").is_file() {
        bail!("{} holds no model.onnx", dir.display());
    }
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| valid_name(n))
        .with_context(|| format!("{} is not a valid model name", dir.display()))?
        .to_owned();
    Ok(ModelSource { name, dir })
}

/// Model names appear in URLs: letters, digits, `-`, `_` and `.`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_safe() {
        assert!(valid_name("iris"));
        assert!(valid_name("credit-v2.1"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(".hidden"));
        assert!(!valid_name("a/b"));
    }
}
