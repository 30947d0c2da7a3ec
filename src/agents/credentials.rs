//! An agent's login shared between the host and its group-auth boxes: the first copy
//! into a new box, the refresh host → box before a launch, and the write-back box →
//! host when a session ends (spec: upstream-runtime §8.1-8.3, fixing defect 2).
//!
//! Only the OAuth object moves between the two files: every other key on either side
//! stays where it is. The newer token is the one that expires later (the time inside
//! the JSON), not the file touched last. Every write is a temp file + rename at 0600,
//! under one lock for all boxes, and never through a link: the box's home is shared
//! read-write with the container, which may plant links there, so a link on either
//! side is reported and the file left alone.
//!
//! A box is not trusted with the host's login: what it writes back is taken only as a
//! refresh of the host's token ([`accept_refresh`]): the host has a login, the box's
//! token is of the same account, expires within an access token's lifetime, and only
//! the known fields are kept. The host's previous file stays beside it as a 0600
//! backup (`.credentials.json.bak`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::boxes::home::SafeDir;
use crate::fsutil::{self, MODE_SECRET};

/// Where an agent keeps its login, relative to a home (the host's or the box's).
#[derive(Clone, Copy, Debug)]
pub struct CredentialSpec {
    /// The agent's config directory (`.claude`).
    pub dir: &'static str,
    /// The token file in it (`.credentials.json`).
    pub file: &'static str,
    /// The object holding the token (`claudeAiOauth`).
    pub oauth_key: &'static str,
    /// The field inside it that says when the token expires, read as `expiry_format`
    /// says.
    pub expiry_key: &'static str,
    pub expiry_format: ExpiryFormat,
    /// The fields of the OAuth object holding the access token and the refresh token.
    pub access_field: &'static str,
    pub refresh_field: &'static str,
    /// How far ahead a refreshed access token of this agent may expire to be written
    /// back to the host, in ms (an agent's access tokens live hours or days).
    pub max_refresh_lifetime_ms: i64,
    /// The account file beside the config directory (`.claude.json`), of which a new box
    /// gets the keys in `account_keys`; `None`: the agent keeps no such file.
    pub account_file: Option<&'static str>,
    pub account_keys: &'static [&'static str],
    /// The fields of the OAuth object a write-back keeps (any other is dropped).
    pub token_fields: &'static [&'static str],
    /// Fields naming the account a token belongs to: a box's token must carry the
    /// host's values (where the host's has them) to be written back.
    pub account_fields: &'static [&'static str],
}

/// How a token's expiry is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryFormat {
    /// A number: milliseconds since the epoch (Claude Code's `expiresAt`).
    Millis,
    /// A JWT whose payload's `exp` claim is seconds since the epoch (Codex's
    /// `access_token`).
    JwtExp,
}

/// A token file read from one side, with what decides which side is newer.
#[derive(Clone, Debug)]
pub struct Side {
    pub json: Value,
    /// Modification time in seconds: the tie-breaker when a token has no expiry.
    pub mtime: i64,
}

/// Access tokens live for hours; an expiry further out than this is not believed (a
/// box could write one to make its token win every comparison from then on).
const MAX_CREDIBLE_LIFETIME_MS: i64 = 30 * 24 * 3600 * 1000;

/// The suffix of the host's previous token file, kept on each write-back.
pub const BACKUP_SUFFIX: &str = ".bak";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The expiry inside a token file, if it has a credible one.
fn expiry(spec: &CredentialSpec, v: &Value) -> Option<i64> {
    let e = token_expiry(spec, v.get(spec.oauth_key)?)?;
    (e <= now_ms().saturating_add(MAX_CREDIBLE_LIFETIME_MS)).then_some(e)
}

/// The expiry (ms since the epoch) written in one OAuth object, as its spec reads it.
fn token_expiry(spec: &CredentialSpec, token: &Value) -> Option<i64> {
    let field = token.get(spec.expiry_key)?;
    match spec.expiry_format {
        ExpiryFormat::Millis => field.as_i64(),
        ExpiryFormat::JwtExp => jwt_exp(field.as_str()?)?.checked_mul(1000),
    }
}

/// The `exp` claim (seconds) of a JWT, read without checking its signature: it only
/// orders two tokens of the same login, and a box's is still vetted by
/// [`accept_refresh`].
pub fn jwt_exp(jwt: &str) -> Option<i64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64url(payload)?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

/// Unpadded (or padded) base64url, as JWTs use it.
fn base64url(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().take_while(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Whether a token file holds a usable login: a refresh token, or an access token
/// with a (credible) expiry still ahead.
pub fn holds_token(spec: &CredentialSpec, v: &Value) -> bool {
    let Some(token) = v.get(spec.oauth_key) else {
        return false;
    };
    token
        .get(spec.refresh_field)
        .and_then(Value::as_str)
        .is_some_and(|t| !t.is_empty())
        || expiry(spec, v).is_some_and(|e| e > now_ms())
}

/// Whether `src`'s token should replace `dst`'s: it must have one; then the later
/// expiry wins; the same token never moves; without expiries the newer file wins.
pub fn should_replace(spec: &CredentialSpec, src: &Side, dst: &Side) -> bool {
    let Some(src_token) = src.json.get(spec.oauth_key) else {
        return false;
    };
    let Some(dst_token) = dst.json.get(spec.oauth_key) else {
        return true;
    };
    if src_token == dst_token {
        return false;
    }
    match (expiry(spec, &src.json), expiry(spec, &dst.json)) {
        (Some(a), Some(b)) if a != b => a > b,
        (Some(_), None) => true,
        (None, Some(_)) => false,
        _ => src.mtime > dst.mtime,
    }
}

/// The OAuth object of `boxed`, reduced to the known fields, if it may replace the
/// host's (`host`) as a refresh of it; otherwise why not. `now` in ms since the epoch.
pub fn accept_refresh(
    spec: &CredentialSpec,
    boxed: &Value,
    host: &Value,
    now: i64,
) -> Result<Value, String> {
    let host_token = host
        .get(spec.oauth_key)
        .and_then(Value::as_object)
        .ok_or("the host has no login of its own to refresh")?;
    let token = boxed
        .get(spec.oauth_key)
        .and_then(Value::as_object)
        .ok_or("it is not an object")?;
    if token
        .get(spec.access_field)
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("it has no access token".into());
    }
    let token_value = Value::Object(token.clone());
    let expires = token_expiry(spec, &token_value).ok_or("it has no expiry")?;
    if expires <= now || expires > now.saturating_add(spec.max_refresh_lifetime_ms) {
        return Err(format!(
            "its expiry is not that of a refreshed access token (within {} hours)",
            spec.max_refresh_lifetime_ms / 3_600_000
        ));
    }
    for field in spec.account_fields {
        if let Some(want) = host_token.get(*field)
            && token.get(*field) != Some(want)
        {
            return Err(format!("it is of another account ({field} differs)"));
        }
    }
    let kept: Map<String, Value> = token
        .iter()
        .filter(|(k, _)| spec.token_fields.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Value::Object(kept))
}

/// `dst` with only its OAuth object taken from `src` (a `dst` that is not a JSON object
/// becomes one).
pub fn merge_oauth(spec: &CredentialSpec, dst: &Value, src: &Value) -> Value {
    let mut out = match dst {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(token) = src.get(spec.oauth_key) {
        out.insert(spec.oauth_key.to_owned(), token.clone());
    }
    Value::Object(out)
}

/// The account file a new group-auth box gets: the listed keys from the host's (nulls
/// left out) and onboarding marked done, so the agent does not greet the user again.
pub fn filtered_account(spec: &CredentialSpec, host: &Value) -> Value {
    let mut out = Map::new();
    for key in spec.account_keys {
        if let Some(v) = host.get(*key).filter(|v| !v.is_null()) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    out.insert("hasCompletedOnboarding".into(), Value::Bool(true));
    Value::Object(out)
}

/// JSON as the agent (and the Python tool) writes it: two-space indent, final newline.
pub fn render(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value always serialises");
    s.push('\n');
    s.into_bytes()
}

/// What a sync did, for the caller to report.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Unchanged,
    Copied,
    Merged,
    /// Left alone, with the reason (a planted link, unreadable JSON…).
    Skipped(String),
    /// A box's token not written back to the host, with the reason.
    Refused(String),
}

/// The host's and one box's copies of an agent's login.
pub struct Credentials<'a> {
    pub spec: &'a CredentialSpec,
    /// The host home (`~`).
    pub host_home: PathBuf,
    /// The box's home on the host (`shell/`).
    pub box_home: PathBuf,
    /// Held while reading and writing: boxes ending together take turns.
    pub lock: PathBuf,
}

/// One side's token file, opened without following links.
struct Opened {
    dir: SafeDir,
    side: Option<Side>,
}

fn read_side(dir: &SafeDir, name: &str, what: &str) -> Result<Option<Side>, String> {
    let name = OsStr::new(name);
    match dir.kind(name) {
        None => return Ok(None),
        Some(crate::boxes::home::Kind::File) => {}
        Some(_) => {
            return Err(format!(
                "{} is not a regular file (a symbolic link?); left alone",
                dir.path().join(name).display()
            ));
        }
    }
    let bytes = dir
        .read(name)
        .map_err(|e| format!("reading {what}: {e}"))?
        .ok_or_else(|| format!("{what} changed while being read; left alone"))?;
    let json = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "{what} {} is not valid JSON ({e})",
            dir.path().join(name).display()
        )
    })?;
    let mtime = dir.file_stat(name).map_or(0, |(_, m)| m);
    Ok(Some(Side { json, mtime }))
}

impl Credentials<'_> {
    fn host_dir(&self, create: bool) -> Result<Option<SafeDir>, String> {
        // The host home is the user's own: a `~/.claude` that is a link (dotfiles) is
        // followed; only the files inside are opened without following.
        let rel = Path::new(self.spec.dir);
        if let Some(real) = self
            .host_home
            .join(rel)
            .canonicalize()
            .ok()
            .filter(|r| r.is_dir())
        {
            return SafeDir::open(&real)
                .map(Some)
                .map_err(|e| format!("opening {}: {e}", real.display()));
        }
        if !create {
            return Ok(None);
        }
        let home = self
            .host_home
            .canonicalize()
            .unwrap_or(self.host_home.clone());
        SafeDir::open(&home)
            .and_then(|h| h.create_dir_all(rel))
            .map(Some)
            .map_err(|e| format!("creating {}: {e}", self.host_home.join(rel).display()))
    }

    fn box_dir(&self, create: bool) -> Result<Option<SafeDir>, String> {
        let home = SafeDir::open(&self.box_home)
            .map_err(|e| format!("opening the box home {}: {e}", self.box_home.display()))?;
        let rel = Path::new(self.spec.dir);
        let dir = if create {
            Some(home.create_dir_all(rel).map_err(|e| e.to_string())?)
        } else {
            home.open_dir(rel).map_err(|e| e.to_string())?
        };
        Ok(dir)
    }

    fn open_host(&self, create: bool) -> Result<Option<Opened>, String> {
        let Some(dir) = self.host_dir(create)? else {
            return Ok(None);
        };
        let side = read_side(&dir, self.spec.file, "the host credentials")?;
        Ok(Some(Opened { dir, side }))
    }

    fn open_box(&self, create: bool) -> Result<Option<Opened>, String> {
        let Some(dir) = self.box_dir(create)? else {
            return Ok(None);
        };
        let side = read_side(&dir, self.spec.file, "the box credentials")?;
        Ok(Some(Opened { dir, side }))
    }

    /// Neither side has the token file (nor anything in its place): there is nothing
    /// to read, write or lock. An agent the user does not log in with then costs a
    /// launch two `stat`s, not the lock. Anything there, a link included, takes the
    /// careful path.
    fn absent(&self) -> bool {
        let rel = Path::new(self.spec.dir).join(self.spec.file);
        std::fs::symlink_metadata(self.host_home.join(&rel)).is_err()
            && std::fs::symlink_metadata(self.box_home.join(&rel)).is_err()
    }

    fn locked<T>(&self, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        let _lock = fsutil::lock_exclusive(&self.lock)
            .map_err(|e| format!("locking {}: {e}", self.lock.display()))?;
        f()
    }

    fn write(dir: &SafeDir, name: &str, v: &Value, mode: u32) -> Result<(), String> {
        dir.replace(OsStr::new(name), &render(v), mode)
            .map_err(|e| format!("writing {}: {e}", dir.path().join(name).display()))
    }

    /// Before a session: a box without an account file gets one (group auth: the
    /// listed keys of the host's; distinct auth: empty, the box logs in itself), then a
    /// group-auth box gets the host's newer token.
    pub fn before_session(&self, group_auth: bool) -> Outcome {
        if self.spec.account_file.is_none() && self.absent() {
            return Outcome::Unchanged;
        }
        let run = || -> Result<Outcome, String> {
            self.ensure_account(group_auth)?;
            if group_auth {
                self.refresh_locked()
            } else {
                Ok(Outcome::Unchanged)
            }
        };
        self.locked(run).unwrap_or_else(Outcome::Skipped)
    }

    /// The account file, only if the box has none: the host's (possibly large) account
    /// file is read only then.
    fn ensure_account(&self, group_auth: bool) -> Result<(), String> {
        let Some(account_file) = self.spec.account_file else {
            return Ok(());
        };
        let home = SafeDir::open(&self.box_home).map_err(|e| e.to_string())?;
        let name = OsStr::new(account_file);
        if home.kind(name).is_some() {
            return Ok(());
        }
        let host = group_auth
            .then(|| std::fs::read(self.host_home.join(account_file)).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let content = host.map_or_else(Vec::new, |h| render(&filtered_account(self.spec, &h)));
        home.write_new(name, &content, MODE_SECRET)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Before a re-attach: the host's newer token into the box.
    pub fn refresh(&self) -> Outcome {
        if self.absent() {
            return Outcome::Unchanged;
        }
        self.locked(|| self.refresh_locked())
            .unwrap_or_else(Outcome::Skipped)
    }

    fn refresh_locked(&self) -> Result<Outcome, String> {
        let Some(host) = self.open_host(false)?.and_then(|h| h.side) else {
            return Ok(Outcome::Unchanged);
        };
        if host.json.get(self.spec.oauth_key).is_none() {
            return Err(format!(
                "the host credentials have no '{}'; not copied",
                self.spec.oauth_key
            ));
        }
        let boxed = self.open_box(true)?.expect("created");
        self.carry(&host, &boxed)
    }

    /// After a session: the box's newer token back to the host if it is a refresh of
    /// the host's ([`accept_refresh`]), keeping the host's other keys and its previous
    /// file as a 0600 backup; the host file stays 0600.
    pub fn write_back(&self) -> Outcome {
        if self.absent() {
            return Outcome::Unchanged;
        }
        let run = || -> Result<Outcome, String> {
            let Some(boxed) = self.open_box(false)?.and_then(|b| b.side) else {
                return Ok(Outcome::Unchanged);
            };
            if boxed.json.get(self.spec.oauth_key).is_none() {
                return Ok(Outcome::Unchanged);
            }
            let Some(host) = self.open_host(false)? else {
                return Ok(Outcome::Refused(
                    "the host has no login of its own to refresh".into(),
                ));
            };
            let Some(host_side) = &host.side else {
                return Ok(Outcome::Refused(
                    "the host has no login of its own to refresh".into(),
                ));
            };
            if boxed.json.get(self.spec.oauth_key) == host_side.json.get(self.spec.oauth_key)
                || !should_replace(self.spec, &boxed, host_side)
            {
                return Ok(Outcome::Unchanged);
            }
            let token = match accept_refresh(self.spec, &boxed.json, &host_side.json, now_ms()) {
                Ok(t) => t,
                Err(why) => return Ok(Outcome::Refused(why)),
            };
            let backup = format!("{}{BACKUP_SUFFIX}", self.spec.file);
            Self::write(&host.dir, &backup, &host_side.json, MODE_SECRET)?;
            let mut merged = merge_oauth(self.spec, &host_side.json, &Value::Null);
            merged[self.spec.oauth_key] = token;
            Self::write(&host.dir, self.spec.file, &merged, MODE_SECRET)?;
            Ok(Outcome::Merged)
        };
        self.locked(run).unwrap_or_else(Outcome::Skipped)
    }

    /// `src`'s token into `dst` if `dst` has none or an older one; `dst`'s other keys
    /// stay.
    fn carry(&self, src: &Side, dst: &Opened) -> Result<Outcome, String> {
        let outcome = match &dst.side {
            None => Outcome::Copied,
            Some(d) if should_replace(self.spec, src, d) => Outcome::Merged,
            Some(_) => return Ok(Outcome::Unchanged),
        };
        let empty = Value::Object(Map::new());
        let base = dst.side.as_ref().map_or(&empty, |d| &d.json);
        let merged = merge_oauth(self.spec, base, &src.json);
        Self::write(&dst.dir, self.spec.file, &merged, MODE_SECRET)?;
        Ok(outcome)
    }

    /// Switching to distinct auth: the box forgets the shared login.
    pub fn forget(&self) -> std::io::Result<()> {
        let home = SafeDir::open(&self.box_home)?;
        if let Some(dir) = home.open_dir(Path::new(self.spec.dir))? {
            dir.remove(OsStr::new(self.spec.file))?;
        }
        match self.spec.account_file {
            Some(f) => home.remove(OsStr::new(f)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    const SPEC: CredentialSpec = super::super::claude::CREDENTIALS;

    fn side(json: Value, mtime: i64) -> Side {
        Side { json, mtime }
    }

    fn token(access: &str, expires: Option<i64>) -> Value {
        match expires {
            Some(e) => json!({"claudeAiOauth": {"accessToken": access, "expiresAt": e}}),
            None => json!({"claudeAiOauth": {"accessToken": access}}),
        }
    }

    #[test]
    fn the_later_expiry_wins_not_the_later_file() {
        let old = side(token("a", Some(1_000)), 500);
        let new = side(token("b", Some(2_000)), 100);
        assert!(should_replace(&SPEC, &new, &old), "newer token, older file");
        assert!(!should_replace(&SPEC, &old, &new));
        // the same token never moves, whatever the times say
        let same = side(token("a", Some(1_000)), 900);
        assert!(!should_replace(&SPEC, &same, &old));
        // no expiries: the newer file
        let x = side(token("x", None), 10);
        let y = side(token("y", None), 20);
        assert!(should_replace(&SPEC, &y, &x) && !should_replace(&SPEC, &x, &y));
        // a side without a token never replaces; one with a token fills an empty side
        let none = side(json!({"other": 1}), 99);
        assert!(!should_replace(&SPEC, &none, &old));
        assert!(should_replace(&SPEC, &old, &none));
        // an expiry beats none
        assert!(should_replace(&SPEC, &old, &x) && !should_replace(&SPEC, &x, &old));
        // an expiry decades away is not believed: it cannot make a box's token win
        let forever = side(token("planted", Some(i64::MAX)), 1_000_000);
        assert!(!should_replace(&SPEC, &forever, &old));
    }

    /// A JWT whose payload is `{"exp": exp}` (no signature needed to order tokens).
    fn jwt(exp: i64) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let payload = format!(r#"{{"exp":{exp}}}"#);
        let mut enc = String::new();
        for chunk in payload.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                enc.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        format!("eyJhbGciOiJub25lIn0.{enc}.sig")
    }

    /// Codex keeps its expiry inside the access token (a JWT's `exp`, seconds): the
    /// later one wins, and a box's is written back only as a refresh of the host's
    /// account within Codex's access-token lifetime.
    #[test]
    fn a_codex_login_orders_and_vets_by_the_jwt_expiry() {
        const CODEX: CredentialSpec = super::super::codex::CREDENTIALS;
        let now = now_ms();
        let secs = |ms: i64| ms / 1000;
        assert_eq!(jwt_exp(&jwt(1_234)), Some(1_234));
        assert_eq!(jwt_exp("not-a-jwt"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
        let tokens = |access: String, account: &str| {
            json!({"OPENAI_API_KEY": null, "tokens": {"access_token": access,
                "refresh_token": "r", "id_token": "i", "account_id": account}})
        };
        let host = side(tokens(jwt(secs(now + HOUR)), "acct"), 900);
        let boxed = side(tokens(jwt(secs(now + 240 * HOUR)), "acct"), 100);
        assert!(
            should_replace(&CODEX, &boxed, &host),
            "later expiry, older file"
        );
        assert!(!should_replace(&CODEX, &host, &boxed));
        let ok = accept_refresh(&CODEX, &boxed.json, &host.json, now).unwrap();
        assert_eq!(ok["refresh_token"], "r");
        let other = tokens(jwt(secs(now + 240 * HOUR)), "someone-else");
        assert!(
            accept_refresh(&CODEX, &other, &host.json, now)
                .unwrap_err()
                .contains("another account")
        );
        let too_far = tokens(jwt(secs(now + 20 * 24 * HOUR)), "acct");
        assert!(accept_refresh(&CODEX, &too_far, &host.json, now).is_err());
        let no_exp = tokens("opaque".into(), "acct");
        assert_eq!(
            accept_refresh(&CODEX, &no_exp, &host.json, now).unwrap_err(),
            "it has no expiry"
        );
        // only `tokens` moves: the host's API key stays the host's
        let merged = merge_oauth(
            &CODEX,
            &json!({"OPENAI_API_KEY": "sk-host", "tokens": {}}),
            &boxed.json,
        );
        assert_eq!(merged["OPENAI_API_KEY"], "sk-host");
        assert!(holds_token(&CODEX, &boxed.json));
    }

    /// An agent whose login neither side has is not locked for, nor given a
    /// directory in the box; a link in its token file's place still takes the careful
    /// path (and is reported).
    #[test]
    fn a_login_neither_side_has_costs_no_lock() {
        const CODEX: CredentialSpec = super::super::codex::CREDENTIALS;
        let h = homes();
        let c = Credentials {
            spec: &CODEX,
            ..h.creds()
        };
        assert_eq!(c.before_session(true), Outcome::Unchanged);
        assert_eq!(c.refresh(), Outcome::Unchanged);
        assert_eq!(c.write_back(), Outcome::Unchanged);
        assert!(!h.lock.exists(), "no lock taken");
        assert!(!h.boxed.join(".codex").exists(), "nothing made in the box");
        std::fs::create_dir_all(h.boxed.join(".codex")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", h.boxed.join(".codex/auth.json")).unwrap();
        assert!(matches!(c.write_back(), Outcome::Skipped(_)));
    }

    #[test]
    fn merging_moves_only_the_token() {
        let host = json!({"claudeAiOauth": {"accessToken": "h"}, "hostOnly": true});
        let boxed = json!({"claudeAiOauth": {"accessToken": "b"}, "mcpOAuth": {"k": 1}});
        let out = merge_oauth(&SPEC, &host, &boxed);
        assert_eq!(
            out,
            json!({"claudeAiOauth": {"accessToken": "b"}, "hostOnly": true})
        );
        assert_eq!(
            merge_oauth(&SPEC, &json!([1]), &boxed),
            json!({"claudeAiOauth": {"accessToken": "b"}})
        );
    }

    #[test]
    fn the_account_file_keeps_the_listed_keys() {
        let host = json!({"oauthAccount": {"email": "a@b"}, "installMethod": null,
            "projects": {"/x": {}}, "userID": "u"});
        assert_eq!(
            filtered_account(&SPEC, &host),
            json!({"oauthAccount": {"email": "a@b"}, "hasCompletedOnboarding": true})
        );
        assert_eq!(
            String::from_utf8(render(&json!({"a": 1}))).unwrap(),
            "{\n  \"a\": 1\n}\n"
        );
    }

    struct Homes {
        _t: tempfile::TempDir,
        host: PathBuf,
        boxed: PathBuf,
        lock: PathBuf,
    }

    fn homes() -> Homes {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        let boxed = t.path().join("box");
        std::fs::create_dir_all(host.join(".claude")).unwrap();
        std::fs::create_dir_all(&boxed).unwrap();
        let lock = t.path().join("credentials.lock");
        Homes {
            _t: t,
            host,
            boxed,
            lock,
        }
    }

    impl Homes {
        fn creds(&self) -> Credentials<'static> {
            Credentials {
                spec: &SPEC,
                host_home: self.host.clone(),
                box_home: self.boxed.clone(),
                lock: self.lock.clone(),
            }
        }
        fn host_file(&self) -> PathBuf {
            self.host.join(".claude/.credentials.json")
        }
        fn box_file(&self) -> PathBuf {
            self.boxed.join(".claude/.credentials.json")
        }
    }

    fn write(p: &Path, v: &Value) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, render(v)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn read(p: &Path) -> Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    const HOUR: i64 = 3600 * 1000;

    #[test]
    fn a_full_cycle_keeps_host_keys_and_0600() {
        let h = homes();
        let now = now_ms();
        let mut host = token("h1", Some(now - HOUR));
        host["hostOnly"] = json!("keep me");
        write(&h.host_file(), &host);
        write(
            &h.host.join(".claude.json"),
            &json!({"oauthAccount": {"email": "a@b"}, "secret": "no"}),
        );
        let c = h.creds();
        assert_eq!(c.before_session(true), Outcome::Copied);
        assert_eq!(mode(&h.box_file()), 0o600);
        // only the token reaches the box, not the host's other secrets
        assert!(read(&h.box_file()).get("hostOnly").is_none());
        let account = read(&h.boxed.join(".claude.json"));
        assert!(account.get("secret").is_none() && account["hasCompletedOnboarding"] == true);
        // the box refreshes its token
        let mut boxed = read(&h.box_file());
        boxed["claudeAiOauth"] = json!({"accessToken": "b2", "expiresAt": now + 8 * HOUR});
        write(&h.box_file(), &boxed);
        assert_eq!(c.write_back(), Outcome::Merged);
        let back = read(&h.host_file());
        assert_eq!(back["hostOnly"], "keep me");
        assert_eq!(back["claudeAiOauth"]["accessToken"], "b2");
        assert_eq!(mode(&h.host_file()), 0o600);
        let backup = h.host.join(".claude/.credentials.json.bak");
        assert_eq!(read(&backup)["claudeAiOauth"]["accessToken"], "h1");
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(c.write_back(), Outcome::Unchanged);
        assert_eq!(c.refresh(), Outcome::Unchanged);
        // the host logs in again
        write(&h.host_file(), &token("h3", Some(now + 9 * HOUR)));
        assert_eq!(c.refresh(), Outcome::Merged);
        assert_eq!(read(&h.box_file())["claudeAiOauth"]["accessToken"], "h3");
        assert_eq!(mode(&h.box_file()), 0o600);
    }

    /// Issue 10, item 6: a box cannot replace the host's login with a token of its own
    /// account, a long-lived token, or one the host never had; what it may write back
    /// keeps only the known fields.
    #[test]
    fn write_back_takes_only_a_refresh_of_the_hosts_token() {
        let now = now_ms();
        let host = json!({"claudeAiOauth": {"accessToken": "h", "refreshToken": "r",
            "expiresAt": now - HOUR, "subscriptionType": "max", "scopes": ["user:inference"]}});
        let boxed = |fields: Value| json!({ "claudeAiOauth": fields });
        let ok = accept_refresh(
            &SPEC,
            &boxed(
                json!({"accessToken": "b", "refreshToken": "r2", "expiresAt": now + 8 * HOUR,
                "subscriptionType": "max", "scopes": ["user:inference"], "planted": "x"}),
            ),
            &host,
            now,
        )
        .unwrap();
        assert_eq!(ok["accessToken"], "b");
        assert!(ok.get("planted").is_none(), "unknown fields dropped: {ok}");
        for (what, b) in [
            (
                "29 days",
                json!({"accessToken": "b", "expiresAt": now + 29 * 24 * HOUR, "subscriptionType": "max"}),
            ),
            (
                "another account",
                json!({"accessToken": "b", "expiresAt": now + HOUR, "subscriptionType": "pro"}),
            ),
            (
                "expired",
                json!({"accessToken": "b", "expiresAt": now - 1, "subscriptionType": "max"}),
            ),
            (
                "no access token",
                json!({"refreshToken": "b", "expiresAt": now + HOUR, "subscriptionType": "max"}),
            ),
        ] {
            assert!(
                accept_refresh(&SPEC, &boxed(b), &host, now).is_err(),
                "{what}"
            );
        }
        assert!(
            accept_refresh(
                &SPEC,
                &boxed(json!({"accessToken": "b", "expiresAt": now + HOUR})),
                &json!({}),
                now
            )
            .is_err(),
            "the host has no login"
        );

        // end to end: refused, said why, the host's file untouched and no backup made
        let h = homes();
        write(&h.host_file(), &host);
        write(
            &h.box_file(),
            &boxed(json!({"accessToken": "attacker", "refreshToken": "evil",
                "expiresAt": now + 29 * 24 * HOUR, "subscriptionType": "max"})),
        );
        assert!(matches!(h.creds().write_back(), Outcome::Refused(m) if m.contains("24 hours")));
        assert_eq!(read(&h.host_file()), host);
        assert!(!h.host.join(".claude/.credentials.json.bak").exists());
        // nor into a host with no login at all
        std::fs::remove_file(h.host_file()).unwrap();
        write(
            &h.box_file(),
            &boxed(json!({"accessToken": "attacker", "expiresAt": now + HOUR})),
        );
        assert!(matches!(h.creds().write_back(), Outcome::Refused(_)));
        assert!(!h.host_file().exists());
    }

    #[test]
    fn planted_links_leave_the_host_alone() {
        let h = homes();
        write(&h.host_file(), &token("h1", Some(1_000)));
        let victim = h.host.join("victim.json");
        write(&victim, &json!({"victim": true}));
        let c = h.creds();
        // a link in place of the box's token file: refresh does not write through it,
        // write-back does not read through it
        std::fs::create_dir_all(h.boxed.join(".claude")).unwrap();
        std::os::unix::fs::symlink(&victim, h.box_file()).unwrap();
        assert!(matches!(c.refresh(), Outcome::Skipped(m) if m.contains("symbolic link")));
        assert!(matches!(c.write_back(), Outcome::Skipped(_)));
        assert_eq!(read(&victim), json!({"victim": true}));
        assert_eq!(read(&h.host_file())["claudeAiOauth"]["accessToken"], "h1");
        // a link in place of the whole config dir
        std::fs::remove_dir_all(h.boxed.join(".claude")).unwrap();
        std::os::unix::fs::symlink(h.host.join(".claude"), h.boxed.join(".claude")).unwrap();
        assert!(matches!(c.refresh(), Outcome::Skipped(_)));
        assert_eq!(c.write_back(), Outcome::Unchanged);
        assert_eq!(read(&h.host_file())["claudeAiOauth"]["accessToken"], "h1");
        // and a link for the account file of a new box
        std::fs::remove_file(h.boxed.join(".claude")).unwrap();
        std::os::unix::fs::symlink(&victim, h.boxed.join(".claude.json")).unwrap();
        // the token still arrives; the account link is left as it is, not written through
        assert_eq!(c.before_session(true), Outcome::Copied);
        assert!(crate::fsutil::is_symlink(&h.boxed.join(".claude.json")));
        assert_eq!(read(&victim), json!({"victim": true}));
    }

    #[test]
    fn a_host_file_that_is_a_link_is_not_replaced() {
        let h = homes();
        let elsewhere = h.host.join("real.json");
        write(&elsewhere, &token("h1", Some(1_000)));
        std::os::unix::fs::symlink(&elsewhere, h.host_file()).unwrap();
        write(&h.box_file(), &token("b", Some(2_000)));
        assert!(matches!(h.creds().write_back(), Outcome::Skipped(_)));
        assert_eq!(read(&elsewhere)["claudeAiOauth"]["accessToken"], "h1");
    }

    #[test]
    fn boxes_ending_together_leave_valid_json() {
        let h = homes();
        let now = now_ms();
        write(&h.host_file(), &token("h", Some(now - HOUR)));
        let boxes: Vec<PathBuf> = (0..8)
            .map(|i| {
                let b = h.host.parent().unwrap().join(format!("b{i}"));
                write(
                    &b.join(".claude/.credentials.json"),
                    &token(&format!("t{i}"), Some(now + HOUR + i)),
                );
                b
            })
            .collect();
        std::thread::scope(|s| {
            for b in &boxes {
                let c = Credentials {
                    box_home: b.clone(),
                    ..h.creds()
                };
                s.spawn(move || c.write_back());
            }
        });
        // the latest expiry won, whatever the order
        assert_eq!(read(&h.host_file())["claudeAiOauth"]["accessToken"], "t7");
        assert_eq!(mode(&h.host_file()), 0o600);
    }
}
