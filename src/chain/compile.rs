//! Compiles `contracts/` with foundry-compilers and the project's `solc` command, and
//! writes (or checks) the artifacts that the Rust bindings are generated from.
//!
//! The settings match `contracts/foundry.toml` (optimizer 20,000 runs, EVM prague, no
//! metadata hash), so `forge test` and the service run the same bytecode, and a build is
//! reproducible byte for byte: a test compiles afresh and compares with what is committed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    str::FromStr,
};

use foundry_compilers::{
    ConfigurableArtifacts, ProjectBuilder, ProjectPathsConfig,
    artifacts::{BytecodeHash, EvmVersion, Optimizer, Remapping, Settings, SettingsMetadata},
    solc::{Solc, SolcCompiler, SolcSettings},
};
use serde_json::json;

use crate::toolchain::Toolchain;

/// Contracts whose artifacts the service and its benchmarks use.
pub const EXPORTED: &[&str] =
    &["SubscriptionCheckout", "MembershipBadge", "TestToken", "ReferenceBadge", "UnlockStub", "SignatureCheck", "TestSmartWallet", "TestSmartWalletFactory"];

/// Why compiling or checking the contracts failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The compiler could not be set up or run.
    #[error("compiler failed: {0}")]
    Compiler(String),
    /// The sources have errors.
    #[error("contracts do not compile:\n{0}")]
    Sources(String),
    /// A contract that must be exported was not found in the output.
    #[error("contract {0} is missing from the compiler output")]
    Missing(String),
    /// Reading or writing an artifact failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Compiles the Forge project and returns the exported artifacts, keyed by file name
/// (`Name.json`), as the pretty JSON that is committed.
pub fn compile(toolchain: &Toolchain) -> Result<BTreeMap<String, String>, CompileError> {
    let dir = toolchain.contracts_dir();
    let modules = toolchain.root().join("tools/node_modules");
    let remapping = Remapping::from_str(&format!("@openzeppelin/contracts/={}/", modules.join("@openzeppelin/contracts").display()))
        .map_err(|e| CompileError::Compiler(e.to_string()))?;
    let paths = ProjectPathsConfig::builder()
        .root(&dir)
        .sources(dir.join("src"))
        .tests(dir.join("test"))
        .artifacts(dir.join("out"))
        .libs([modules])
        .remapping(remapping)
        .build_with_root(&dir);

    let settings = Settings {
        optimizer: Optimizer { enabled: Some(true), runs: Some(20_000), ..Default::default() },
        evm_version: Some(EvmVersion::Prague),
        metadata: Some(SettingsMetadata::new(BytecodeHash::None, false)),
        via_ir: Some(true),
        ..Default::default()
    };

    let solc = Solc::new(toolchain.solc()).map_err(|e| CompileError::Compiler(e.to_string()))?;
    let project = ProjectBuilder::<SolcCompiler, ConfigurableArtifacts>::new(ConfigurableArtifacts::default())
        .paths(paths)
        .settings(SolcSettings { settings, ..Default::default() })
        .ephemeral()
        .no_artifacts()
        .offline()
        .build(SolcCompiler::Specific(solc))
        .map_err(|e| CompileError::Compiler(e.to_string()))?;
    // Only what is exported and what it imports: the forge tests are compiled by forge.
    // `devnet/` holds what local chains and tests deploy (the test tokens), kept out of
    // `src/` so that no production contract can import it.
    let mut files = sol_files(&dir.join("src"))?;
    files.extend(sol_files(&dir.join("devnet"))?);
    files.push(dir.join("test/bench/ReferenceBadge.sol"));
    files.push(dir.join("test/bench/UnlockStub.sol"));
    let output = project.compile_files(files).map_err(|e| CompileError::Compiler(e.to_string()))?;
    if output.has_compiler_errors() {
        return Err(CompileError::Sources(output.to_string()));
    }

    let mut exported = BTreeMap::new();
    for (id, artifact) in output.into_artifacts() {
        if !EXPORTED.contains(&id.name.as_str()) {
            continue;
        }
        let code = |b: Option<String>| b.unwrap_or_default();
        let bytecode = artifact.bytecode.as_ref().and_then(|b| b.object.as_bytes().map(|b| b.to_string()));
        let deployed = artifact.deployed_bytecode.as_ref().and_then(|d| d.bytecode.as_ref()).and_then(|b| b.object.as_bytes().map(|b| b.to_string()));
        let doc = json!({
            "abi": artifact.abi.as_ref(),
            "bytecode": { "object": code(bytecode) },
            "deployedBytecode": { "object": code(deployed) },
        });
        let text = serde_json::to_string_pretty(&doc).expect("artifact JSON serializes") + "\n";
        exported.insert(format!("{}.json", id.name), text);
    }
    for name in EXPORTED {
        if !exported.contains_key(&format!("{name}.json")) {
            return Err(CompileError::Missing((*name).to_string()));
        }
    }
    Ok(exported)
}

/// Returns the folder of committed artifacts.
pub fn artifacts_dir(toolchain: &Toolchain) -> PathBuf {
    toolchain.contracts_dir().join("artifacts")
}

/// Compiles and writes the exported artifacts; returns the files that changed.
pub fn build(toolchain: &Toolchain) -> Result<Vec<PathBuf>, CompileError> {
    let dir = artifacts_dir(toolchain);
    std::fs::create_dir_all(&dir).map_err(|source| CompileError::Io { path: dir.clone(), source })?;
    let mut changed = Vec::new();
    for (file, text) in compile(toolchain)? {
        let path = dir.join(file);
        if read(&path)?.as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).map_err(|source| CompileError::Io { path: path.clone(), source })?;
            changed.push(path);
        }
    }
    Ok(changed)
}

/// Compiles afresh and returns the committed artifacts that differ from the fresh build
/// (empty when they all match).
pub fn check(toolchain: &Toolchain) -> Result<Vec<PathBuf>, CompileError> {
    let dir = artifacts_dir(toolchain);
    let mut stale = Vec::new();
    for (file, text) in compile(toolchain)? {
        let path = dir.join(file);
        if read(&path)?.as_deref() != Some(text.as_str()) {
            stale.push(path);
        }
    }
    Ok(stale)
}

/// Returns the Solidity files under `dir`, recursively, in a stable order.
fn sol_files(dir: &Path) -> Result<Vec<PathBuf>, CompileError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| CompileError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let path = entry.map_err(|source| CompileError::Io { path: dir.to_path_buf(), source })?.path();
        if path.is_dir() {
            files.extend(sol_files(&path)?);
        } else if path.extension().is_some_and(|e| e == "sol") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read(path: &Path) -> Result<Option<String>, CompileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CompileError::Io { path: path.to_path_buf(), source }),
    }
}
