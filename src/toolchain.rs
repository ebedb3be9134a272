//! Finds the pinned toolchain that `tools/install.sh` puts in `tools/bin`: anvil, forge,
//! cast and a `solc`-compatible compiler. A native `anvil` or `solc` wins when
//! `TMAI_PAY_ANVIL` or `TMAI_PAY_SOLC` names one.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Why the toolchain could not be found or installed.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    /// The project folder (with `tools/install.sh`) was not found.
    #[error("project folder {0} has no tools/install.sh; set TMAI_PAY_PROJECT_DIR to a tmai-pay checkout")]
    NoProject(PathBuf),
    /// The install script failed.
    #[error("tools/install.sh failed ({0}); run it by hand to see why")]
    InstallFailed(String),
    /// A tool named by an environment variable does not exist.
    #[error("{var} points at {path}, which is not an executable file")]
    BadOverride {
        /// The environment variable.
        var: &'static str,
        /// The path it holds.
        path: PathBuf,
    },
}

/// Paths of the tools the project drives.
#[derive(Debug, Clone)]
pub struct Toolchain {
    root: PathBuf,
    anvil: PathBuf,
    solc: PathBuf,
}

impl Toolchain {
    /// Returns the toolchain of the project at `TMAI_PAY_PROJECT_DIR`, or of the checkout
    /// this binary was built from, installing the pinned tools first when they are missing.
    pub fn locate() -> Result<Self, ToolchainError> {
        let root = std::env::var_os("TMAI_PAY_PROJECT_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        Self::at(&root)
    }

    /// Returns the toolchain of the project at `root`, installing it when needed.
    pub fn at(root: &Path) -> Result<Self, ToolchainError> {
        let script = root.join("tools/install.sh");
        if !script.is_file() {
            return Err(ToolchainError::NoProject(root.to_path_buf()));
        }
        let bin = root.join("tools/bin");
        let anvil = tool_path("TMAI_PAY_ANVIL", bin.join("anvil"))?;
        let solc = tool_path("TMAI_PAY_SOLC", bin.join("solc"))?;
        if !is_executable(&anvil) || !is_executable(&solc) || !root.join("tools/node_modules/@openzeppelin").is_dir() {
            let status = Command::new("bash").arg(&script).status().map_err(|e| ToolchainError::InstallFailed(e.to_string()))?;
            if !status.success() {
                return Err(ToolchainError::InstallFailed(status.to_string()));
            }
        }
        Ok(Self { root: root.to_path_buf(), anvil, solc })
    }

    /// Returns the project folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the `anvil` command.
    pub fn anvil(&self) -> &Path {
        &self.anvil
    }

    /// Returns the `solc`-compatible compiler command.
    pub fn solc(&self) -> &Path {
        &self.solc
    }

    /// Returns the folder holding the Forge project (`contracts/`).
    pub fn contracts_dir(&self) -> PathBuf {
        self.root.join("contracts")
    }

    /// Returns the folder of the checked-in local chain fixtures.
    pub fn fixtures_dir(&self) -> PathBuf {
        self.root.join("anvil-fixtures")
    }
}

fn tool_path(var: &'static str, default: PathBuf) -> Result<PathBuf, ToolchainError> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            if is_executable(&path) { Ok(path) } else { Err(ToolchainError::BadOverride { var, path }) }
        }
        _ => Ok(default),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
