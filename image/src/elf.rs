//! Finds the shared libraries an ELF binary needs, as `ldd` would, without running anything.
//!
//! The search follows ld.so: the binary's `PT_INTERP`, then every `DT_NEEDED` entry, resolved
//! recursively. A name is looked up in the requesting object's `DT_RPATH` and those of the objects
//! that loaded it (only when the requester has no `DT_RUNPATH`), then its `DT_RUNPATH`, then the
//! directories of `/etc/ld.so.conf` (with its `include` globs), then the default directories.
//! Candidates of another ELF class or machine (a 32-bit library of the same name) are skipped.
//!
//! # Caveats
//!
//! `LD_LIBRARY_PATH`, `LD_PRELOAD`, `/etc/ld.so.preload`, `/etc/ld.so.cache` and the
//! `glibc-hwcaps` subdirectories are not consulted: an image must not depend on the builder's
//! environment, and the configured directories hold the same libraries as the cache. Libraries
//! opened with `dlopen` (NSS modules, `gconv`) are invisible here, as they are to `ldd`.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use goblin::elf::header::{self, Header};
use goblin::elf::Elf;

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an elf file")]
    NotElf { path: PathBuf },
    #[error("parsing elf file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: goblin::error::Error,
    },
    #[error("library {library} needed by {path} not found")]
    Missing { library: String, path: PathBuf },
}

/// The host files needed to run `binary`: its dynamic loader and the transitive closure of its
/// shared libraries, loader first, then in breadth-first load order. Empty for a static binary.
pub fn dependencies(binary: &Path) -> Result<Vec<PathBuf>, ElfError> {
    let binary = std::path::absolute(binary).map_err(|source| ElfError::Read {
        path: binary.to_path_buf(),
        source,
    })?;
    Resolver::new("/")?.dependencies(&binary)
}

/// The ELF class, byte order and machine an object was built for; its libraries must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arch {
    class: u8,
    data: u8,
    machine: u16,
}

impl Arch {
    fn of(header: &Header) -> Self {
        Arch {
            class: header.e_ident[header::EI_CLASS],
            data: header.e_ident[header::EI_DATA],
            machine: header.e_machine,
        }
    }

    fn is_64(self) -> bool {
        self.class == header::ELFCLASS64
    }

    /// The Debian multiarch triplets of this architecture.
    fn triplets(self) -> &'static [&'static str] {
        let le = self.data == header::ELFDATA2LSB;
        match (self.machine, self.is_64()) {
            (header::EM_X86_64, true) => &["x86_64-linux-gnu"],
            (header::EM_X86_64, false) => &["x86_64-linux-gnux32"],
            (header::EM_386, _) => &["i386-linux-gnu"],
            (header::EM_AARCH64, _) => &["aarch64-linux-gnu"],
            (header::EM_ARM, _) => &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
            (header::EM_RISCV, true) => &["riscv64-linux-gnu"],
            (header::EM_PPC64, _) if le => &["powerpc64le-linux-gnu"],
            (header::EM_PPC64, _) => &["powerpc64-linux-gnu"],
            (header::EM_S390, _) => &["s390x-linux-gnu"],
            (header::EM_LOONGARCH, true) => &["loongarch64-linux-gnu"],
            (header::EM_MIPS, true) if le => &["mips64el-linux-gnuabi64"],
            (header::EM_MIPS, false) if le => &["mipsel-linux-gnu"],
            _ => &[],
        }
    }

    /// What `$PLATFORM` expands to (the kernel's AT_PLATFORM for this machine).
    fn platform(self) -> &'static str {
        match self.machine {
            header::EM_X86_64 => "x86_64",
            header::EM_386 => "i686",
            header::EM_AARCH64 => "aarch64",
            header::EM_ARM => "v7l",
            header::EM_PPC64 => "powerpc64le",
            header::EM_S390 => "s390x",
            header::EM_RISCV => "riscv64",
            _ => "",
        }
    }

    /// What `$LIB` may expand to, most likely first: the multiarch directory on Debian and
    /// Ubuntu, `lib64` (or `lib`/`lib32` for 32-bit objects) elsewhere.
    fn lib_names(self) -> Vec<String> {
        let mut names: Vec<String> = self.triplets().iter().map(|t| format!("lib/{t}")).collect();
        if self.is_64() {
            names.push("lib64".into());
        } else {
            names.extend(["lib32".into(), "lib".into()]);
        }
        names
    }

    /// The directories ld.so searches when nothing else names the library.
    fn default_dirs(self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for t in self.triplets() {
            dirs.push(PathBuf::from(format!("/lib/{t}")));
            dirs.push(PathBuf::from(format!("/usr/lib/{t}")));
        }
        let plain: &[&str] = if self.is_64() {
            &["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
        } else {
            &["/lib32", "/usr/lib32", "/lib", "/usr/lib"]
        };
        dirs.extend(plain.iter().map(PathBuf::from));
        dirs
    }
}

/// What the search needs to know about one loaded object.
struct Object {
    path: PathBuf,
    arch: Arch,
    interpreter: Option<String>,
    soname: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

impl Object {
    fn load(resolver: &Resolver, path: &Path) -> Result<Self, ElfError> {
        let host = resolver.host_path(path);
        let read_err = |source| ElfError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = fs::read(&host).map_err(read_err)?;
        if !bytes.starts_with(header::ELFMAG) {
            return Err(ElfError::NotElf {
                path: path.to_path_buf(),
            });
        }
        let elf = Elf::parse(&bytes).map_err(|source| ElfError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        let split = |entries: &[&str]| -> Vec<String> {
            entries
                .iter()
                .flat_map(|e| e.split(':'))
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect()
        };
        Ok(Object {
            path: path.to_path_buf(),
            arch: Arch::of(&elf.header),
            interpreter: elf.interpreter.map(String::from),
            soname: elf.soname.map(String::from),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            rpath: split(&elf.rpaths),
            runpath: split(&elf.runpaths),
        })
    }
}

/// Resolves dependencies inside a filesystem tree: `/` in production, a temporary directory in
/// tests. Paths given to and returned by it are absolute paths as seen from inside that tree.
#[derive(Debug, Clone)]
pub struct Resolver {
    root: PathBuf,
    /// The directories listed by `etc/ld.so.conf` below `root`, in order.
    conf_dirs: Vec<PathBuf>,
}

impl Resolver {
    /// Reads the tree's `etc/ld.so.conf`; a missing one lists no directories.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, ElfError> {
        let root = root.into();
        let mut resolver = Resolver {
            root,
            conf_dirs: Vec::new(),
        };
        let mut dirs = Vec::new();
        resolver.read_conf(Path::new("/etc/ld.so.conf"), 0, &mut dirs)?;
        resolver.conf_dirs = dirs;
        Ok(resolver)
    }

    /// Where the tree's `path` is on the host.
    fn host_path(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn read_conf(&self, conf: &Path, depth: u32, dirs: &mut Vec<PathBuf>) -> Result<(), ElfError> {
        const MAX_INCLUDE_DEPTH: u32 = 8;
        let text = match fs::read_to_string(self.host_path(conf)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ElfError::Read {
                    path: conf.to_path_buf(),
                    source,
                })
            }
        };
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if let Some(pattern) = line
                .strip_prefix("include")
                .filter(|p| p.starts_with([' ', '\t']))
            {
                if depth >= MAX_INCLUDE_DEPTH {
                    continue;
                }
                for pattern in pattern.split_whitespace() {
                    let base = conf.parent().unwrap_or(Path::new("/"));
                    for file in self.glob(&base.join(pattern)) {
                        self.read_conf(&file, depth + 1, dirs)?;
                    }
                }
            } else if !line.starts_with("hwcap") {
                let entries = line
                    .split([':', ',', ' ', '\t'])
                    .filter(|e| e.starts_with('/'));
                // Old ldconfig syntax allowed `DIR=TYPE`; the type is irrelevant here.
                dirs.extend(entries.map(|e| PathBuf::from(e.split('=').next().unwrap_or(e))));
            }
        }
        Ok(())
    }

    /// Expands `*` and `?` in the file name part of `pattern`, sorted like glob(3).
    fn glob(&self, pattern: &Path) -> Vec<PathBuf> {
        let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
            return Vec::new();
        };
        let name = name.to_string_lossy();
        if !name.contains(['*', '?']) {
            return vec![pattern.to_path_buf()];
        }
        let Ok(entries) = fs::read_dir(self.host_path(dir)) else {
            return Vec::new();
        };
        let mut matches: Vec<PathBuf> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|file| !file.starts_with('.') && wildcard_match(&name, file))
            .map(|file| dir.join(file))
            .collect();
        matches.sort();
        matches
    }

    /// See [`dependencies`]; `binary` is an absolute path inside the tree.
    pub fn dependencies(&self, binary: &Path) -> Result<Vec<PathBuf>, ElfError> {
        let main = Object::load(self, binary)?;
        let mut found = Vec::new();
        let mut loaded_names: HashSet<String> = HashSet::new();
        let mut loaded_paths: HashSet<PathBuf> = HashSet::new();
        if let Some(interp) = &main.interpreter {
            let path = PathBuf::from(interp);
            if !self.host_path(&path).is_file() {
                let library = interp.clone();
                return Err(ElfError::Missing {
                    library,
                    path: binary.to_path_buf(),
                });
            }
            // libc names the loader in DT_NEEDED; ld.so recognises it as already loaded.
            let loader = Object::load(self, &path)?;
            loaded_names.extend(loader.soname.clone());
            loaded_names.extend(file_name(&path));
            loaded_paths.insert(path.clone());
            found.push(path);
        }

        // The main program's $ORIGIN is the directory of its real path, as ld.so reads it from
        // /proc/self/exe; a library's is the directory it was found in.
        let origin = self
            .canonical(binary)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut queue = VecDeque::from([(main, origin, Vec::new())]);
        while let Some((object, origin, loader_rpath)) = queue.pop_front() {
            let rpath_chain = if object.runpath.is_empty() {
                let mut chain = self.expand_all(&object.rpath, &origin, object.arch);
                chain.extend(loader_rpath);
                chain
            } else {
                Vec::new()
            };
            let mut search = rpath_chain.clone();
            search.extend(self.expand_all(&object.runpath, &origin, object.arch));
            search.extend(self.conf_dirs.iter().cloned());
            search.extend(object.arch.default_dirs());

            for name in &object.needed {
                if loaded_names.contains(name) {
                    continue;
                }
                let path =
                    self.find(name, &search, object.arch)
                        .ok_or_else(|| ElfError::Missing {
                            library: name.clone(),
                            path: object.path.clone(),
                        })?;
                loaded_names.insert(name.clone());
                if !loaded_paths.insert(path.clone()) {
                    continue;
                }
                let library = Object::load(self, &path)?;
                loaded_names.extend(library.soname.clone());
                let origin = path.parent().map(Path::to_path_buf).unwrap_or_default();
                found.push(path);
                queue.push_back((library, origin, rpath_chain.clone()));
            }
        }
        Ok(found)
    }

    /// The first file called `name` in `dirs` that is an ELF object for `arch`.
    fn find(&self, name: &str, dirs: &[PathBuf], arch: Arch) -> Option<PathBuf> {
        if name.contains('/') {
            let path = PathBuf::from("/").join(name);
            return self.matches_arch(&path, arch).then_some(path);
        }
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|path| self.matches_arch(path, arch))
    }

    fn matches_arch(&self, path: &Path, arch: Arch) -> bool {
        let mut head = Vec::with_capacity(header::header64::SIZEOF_EHDR);
        let limit = header::header64::SIZEOF_EHDR as u64;
        fs::File::open(self.host_path(path))
            .and_then(|file| file.take(limit).read_to_end(&mut head))
            .is_ok_and(|_| Elf::parse_header(&head).is_ok_and(|h| Arch::of(&h) == arch))
    }

    /// `path` with every symlink resolved, as a path inside the tree (unchanged if that fails).
    fn canonical(&self, path: &Path) -> PathBuf {
        let root = fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        fs::canonicalize(self.host_path(path))
            .ok()
            .and_then(|real| {
                real.strip_prefix(&root)
                    .ok()
                    .map(|rel| Path::new("/").join(rel))
            })
            .unwrap_or_else(|| path.to_path_buf())
    }

    /// Removes `.` and those `..` that follow a real directory, where dropping them does not
    /// change what the path names (after a symlink it would, so those stay).
    fn clean(&self, path: &Path) -> PathBuf {
        let mut out = PathBuf::new();
        for part in path.components() {
            match part {
                Component::CurDir => {}
                Component::ParentDir if out == Path::new("/") => {}
                Component::ParentDir
                    if !out.ends_with("..") && !self.host_path(&out).is_symlink() =>
                {
                    out.pop();
                }
                part => out.push(part),
            }
        }
        out
    }

    /// RPATH or RUNPATH entries with `$ORIGIN`, `$LIB` and `$PLATFORM` expanded. `$LIB` may
    /// yield several directories; relative results (relative to the working directory for ld.so)
    /// are dropped.
    fn expand_all(&self, entries: &[String], origin: &Path, arch: Arch) -> Vec<PathBuf> {
        let origin = origin.to_string_lossy();
        let mut dirs = Vec::new();
        for entry in entries {
            let entry = replace_token(entry, "ORIGIN", &origin);
            let entry = replace_token(&entry, "PLATFORM", arch.platform());
            let expanded = if entry.contains("$LIB") || entry.contains("${LIB}") {
                arch.lib_names()
                    .iter()
                    .map(|lib| replace_token(&entry, "LIB", lib))
                    .collect()
            } else {
                vec![entry]
            };
            for dir in expanded.into_iter().map(|dir| self.clean(Path::new(&dir))) {
                if dir.is_absolute() && !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        dirs
    }
}

/// Replaces `$NAME` (when not followed by a name character) and `${NAME}` with `value`.
fn replace_token(text: &str, name: &str, value: &str) -> String {
    let braced = format!("${{{name}}}");
    let bare = format!("${name}");
    let text = text.replace(&braced, value);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find(&bare) {
        let after = &rest[at + bare.len()..];
        out.push_str(&rest[..at]);
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(&bare);
        } else {
            out.push_str(value);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Shell-style matching of `*` (any run) and `?` (any one character).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Classic backtracking over the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a synthetic ELF object declares.
    #[derive(Default)]
    struct Fake<'a> {
        machine: Option<u16>,
        interp: Option<&'a str>,
        soname: Option<&'a str>,
        needed: &'a [&'a str],
        rpath: Option<&'a str>,
        runpath: Option<&'a str>,
    }

    /// A minimal little-endian ELF64 shared object: one PT_LOAD mapping the whole file at
    /// address 0, an optional PT_INTERP, and a PT_DYNAMIC with the requested entries.
    fn fake_elf(fake: &Fake) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let mut strtab = vec![0u8];
        let mut add_str = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let mut dyns: Vec<(u64, u64)> = Vec::new();
        for name in fake.needed {
            dyns.push((1, add_str(name))); // DT_NEEDED
        }
        if let Some(s) = fake.soname {
            dyns.push((14, add_str(s))); // DT_SONAME
        }
        if let Some(s) = fake.rpath {
            dyns.push((15, add_str(s))); // DT_RPATH
        }
        if let Some(s) = fake.runpath {
            dyns.push((29, add_str(s))); // DT_RUNPATH
        }
        let phnum = if fake.interp.is_some() { 3 } else { 2 };
        let interp_off = EHDR + PHDR * phnum;
        let interp = fake.interp.map(|i| format!("{i}\0")).unwrap_or_default();
        let strtab_off = interp_off + interp.len();
        let dyn_off = (strtab_off + strtab.len()).next_multiple_of(8);
        dyns.push((5, strtab_off as u64)); // DT_STRTAB (address == offset)
        dyns.push((10, strtab.len() as u64)); // DT_STRSZ
        dyns.push((0, 0)); // DT_NULL
        let total = dyn_off + dyns.len() * 16;

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let machine = fake.machine.unwrap_or(header::EM_X86_64);
        out.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
        out.extend_from_slice(&machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // entry
        out.extend_from_slice(&(EHDR as u64).to_le_bytes()); // phoff
        out.extend_from_slice(&0u64.to_le_bytes()); // shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        for v in [EHDR as u16, PHDR as u16, phnum as u16, 64, 0, 0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        let mut phdr = |kind: u32, off: usize, size: usize| {
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&4u32.to_le_bytes()); // PF_R
            for v in [off, off, off, size, size, 8] {
                out.extend_from_slice(&(v as u64).to_le_bytes());
            }
        };
        phdr(1, 0, total); // PT_LOAD
        if !interp.is_empty() {
            phdr(3, interp_off, interp.len()); // PT_INTERP
        }
        phdr(2, dyn_off, dyns.len() * 16); // PT_DYNAMIC
        out.extend_from_slice(interp.as_bytes());
        out.extend_from_slice(&strtab);
        out.resize(dyn_off, 0);
        for (tag, val) in dyns {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&val.to_le_bytes());
        }
        out
    }

    /// A bare 32-bit i386 ELF header: enough to be rejected by the class check.
    fn elf32_header() -> Vec<u8> {
        let mut out = vec![0x7f, b'E', b'L', b'F', 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&3u16.to_le_bytes());
        out.extend_from_slice(&header::EM_386.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.resize(52, 0);
        out[40] = 52; // e_ehsize
        out
    }

    fn put(root: &Path, path: &str, bytes: &[u8]) {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    const LOADER: &str = "/lib64/ld-fake.so.2";

    fn tree_with_loader() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let loader = Fake {
            soname: Some("ld-fake.so.2"),
            ..Default::default()
        };
        put(tmp.path(), LOADER, &fake_elf(&loader));
        tmp
    }

    #[test]
    fn host_bash_needs_loader_and_libc() {
        let bash = Path::new("/bin/bash");
        let bytes = fs::read(bash).unwrap();
        let interp = Elf::parse(&bytes).unwrap().interpreter.unwrap().to_string();
        let deps = dependencies(bash).unwrap();
        assert_eq!(deps[0], PathBuf::from(interp), "{deps:?}");
        let has = |prefix: &str| {
            deps.iter()
                .any(|d| file_name(d).unwrap().starts_with(prefix))
        };
        assert!(has("libc.so"), "{deps:?}");
        assert!(deps.iter().all(|d| d.is_file()), "{deps:?}");
    }

    #[test]
    fn static_busybox_needs_nothing() {
        // busybox-static is a test prerequisite: fail rather than skip when it is missing.
        assert_eq!(
            dependencies(Path::new("/bin/busybox")).unwrap(),
            Vec::<PathBuf>::new()
        );
        let tmp = tempfile::tempdir().unwrap();
        put(tmp.path(), "/bin/static", &fake_elf(&Fake::default()));
        let resolver = Resolver::new(tmp.path()).unwrap();
        assert!(resolver
            .dependencies(Path::new("/bin/static"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn runpath_origin_then_ld_so_conf_include_skipping_other_class() {
        let tmp = tree_with_loader();
        let root = tmp.path();
        let prog = Fake {
            interp: Some(LOADER),
            needed: &["libfoo.so.1"],
            runpath: Some("${ORIGIN}/../lib:/nonexistent"),
            ..Default::default()
        };
        put(root, "/app/bin/prog", &fake_elf(&prog));
        let foo = Fake {
            needed: &["libbar.so.2", "ld-fake.so.2"],
            ..Default::default()
        };
        put(root, "/app/lib/libfoo.so.1", &fake_elf(&foo));
        // libfoo has no RUNPATH/RPATH and prog's RUNPATH is not inherited: libbar comes from
        // ld.so.conf, where the first match is a 32-bit library.
        put(root, "/app/lib/libbar.so.2", &fake_elf(&Fake::default()));
        put(
            root,
            "/etc/ld.so.conf",
            b"# comment\ninclude /etc/ld.so.conf.d/*.conf\n",
        );
        put(root, "/etc/ld.so.conf.d/a.conf", b"/opt/a/lib\n");
        put(root, "/etc/ld.so.conf.d/b.conf", b"/opt/b/lib # trailing\n");
        put(root, "/etc/ld.so.conf.d/c.txt", b"/opt/c/lib\n");
        put(root, "/opt/a/lib/libbar.so.2", &elf32_header());
        put(root, "/opt/c/lib/libbar.so.2", &fake_elf(&Fake::default()));
        put(root, "/opt/b/lib/libbar.so.2", &fake_elf(&Fake::default()));
        put(root, "/usr/lib/libbar.so.2", &fake_elf(&Fake::default()));

        let resolver = Resolver::new(root).unwrap();
        assert_eq!(resolver.conf_dirs, paths(&["/opt/a/lib", "/opt/b/lib"]));
        let deps = resolver.dependencies(Path::new("/app/bin/prog")).unwrap();
        let want = [LOADER, "/app/lib/libfoo.so.1", "/opt/b/lib/libbar.so.2"];
        assert_eq!(deps, paths(&want));
    }

    #[test]
    fn origin_of_the_program_is_its_real_directory() {
        let tmp = tree_with_loader();
        let root = tmp.path();
        let prog = Fake {
            needed: &["libfoo.so.1"],
            runpath: Some("$ORIGIN"),
            ..Default::default()
        };
        put(root, "/opt/app/prog", &fake_elf(&prog));
        put(root, "/opt/app/libfoo.so.1", &fake_elf(&Fake::default()));
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("../../opt/app/prog", root.join("usr/bin/prog")).unwrap();
        let deps = Resolver::new(root)
            .unwrap()
            .dependencies(Path::new("/usr/bin/prog"))
            .unwrap();
        assert_eq!(deps, paths(&["/opt/app/libfoo.so.1"]));
    }

    #[test]
    fn rpath_is_inherited_unless_runpath_is_set() {
        let tmp = tree_with_loader();
        let root = tmp.path();
        let prog = Fake {
            needed: &["libfoo.so.1", "libqux.so"],
            rpath: Some("$ORIGIN/r"),
            ..Default::default()
        };
        put(root, "/app/prog", &fake_elf(&prog));
        // libfoo finds libbar through prog's RPATH (the loader chain).
        put(
            root,
            "/app/r/libfoo.so.1",
            &fake_elf(&Fake {
                needed: &["libbar.so"],
                ..Default::default()
            }),
        );
        put(root, "/app/r/libbar.so", &fake_elf(&Fake::default()));
        put(root, "/usr/lib/libbar.so", &fake_elf(&Fake::default()));
        // libqux has both: its RPATH and the inherited one are ignored in favour of RUNPATH.
        let qux = Fake {
            needed: &["libz.so"],
            rpath: Some("/rp"),
            runpath: Some("/ru"),
            ..Default::default()
        };
        put(root, "/app/r/libqux.so", &fake_elf(&qux));
        put(root, "/app/r/libz.so", &fake_elf(&Fake::default()));
        put(root, "/rp/libz.so", &fake_elf(&Fake::default()));
        put(root, "/ru/libz.so", &fake_elf(&Fake::default()));
        let deps = Resolver::new(root)
            .unwrap()
            .dependencies(Path::new("/app/prog"))
            .unwrap();
        let want = [
            "/app/r/libfoo.so.1",
            "/app/r/libqux.so",
            "/app/r/libbar.so",
            "/ru/libz.so",
        ];
        assert_eq!(deps, paths(&want));
    }

    #[test]
    fn lib_and_platform_tokens_expand() {
        let tmp = tree_with_loader();
        let root = tmp.path();
        let prog = Fake {
            needed: &["liba.so", "libb.so"],
            runpath: Some("/x/$LIB:/y/${PLATFORM}"),
            ..Default::default()
        };
        put(root, "/prog", &fake_elf(&prog));
        put(root, "/x/lib64/liba.so", &fake_elf(&Fake::default()));
        put(root, "/y/x86_64/libb.so", &fake_elf(&Fake::default()));
        let deps = Resolver::new(root)
            .unwrap()
            .dependencies(Path::new("/prog"))
            .unwrap();
        assert_eq!(deps, paths(&["/x/lib64/liba.so", "/y/x86_64/libb.so"]));
    }

    #[test]
    fn missing_library_names_it_and_its_user() {
        let tmp = tree_with_loader();
        let root = tmp.path();
        let prog = Fake {
            interp: Some(LOADER),
            needed: &["libfoo.so.1"],
            ..Default::default()
        };
        put(root, "/bin/prog", &fake_elf(&prog));
        put(
            root,
            "/lib/libfoo.so.1",
            &fake_elf(&Fake {
                needed: &["libgone.so.3"],
                ..Default::default()
            }),
        );
        // A library for another machine does not count.
        let arm = Fake {
            machine: Some(header::EM_AARCH64),
            ..Default::default()
        };
        put(root, "/lib/libgone.so.3", &fake_elf(&arm));
        let err = Resolver::new(root)
            .unwrap()
            .dependencies(Path::new("/bin/prog"))
            .unwrap_err();
        assert!(matches!(&err, ElfError::Missing { library, .. } if library == "libgone.so.3"));
        assert_eq!(
            err.to_string(),
            "library libgone.so.3 needed by /lib/libfoo.so.1 not found"
        );

        let err = dependencies(Path::new("/nonexistent/prog")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/prog"), "{err}");
    }

    #[test]
    fn tokens_and_wildcards() {
        assert_eq!(
            replace_token("$ORIGIN/a:${ORIGIN}/b:$ORIGINS", "ORIGIN", "/o"),
            "/o/a:/o/b:$ORIGINS"
        );
        assert!(wildcard_match("*.conf", "libc.conf"));
        assert!(wildcard_match("x*y?z", "xabcyQz"));
        assert!(!wildcard_match("*.conf", "libc.conf.bak"));
        assert!(!wildcard_match("a*", "ba"));
    }
}
