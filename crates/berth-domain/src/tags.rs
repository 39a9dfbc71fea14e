//! Ordering tags for people: newest first.

/// `v1.2.3`, `1.2`, `2.0.0-rc.1` as (major, minor, patch, is-release, pre-release text).
fn semver(tag: &str) -> Option<(u64, u64, u64, bool, String)> {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = match t.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (t, None),
    };
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let patch = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    Some((
        major,
        minor,
        patch,
        pre.is_none(),
        pre.unwrap_or("").to_string(),
    ))
}

/// Whether a tag reads as a version (`v1.2.3`, `1.2`, `2.0.0-rc.1`).
pub fn is_version(tag: &str) -> bool {
    semver(tag).is_some()
}

/// Sorts tags newest first: tags that read as versions by version (a release above its
/// pre-releases), then the others in the reverse of the order given (registries list them
/// oldest first or alphabetically; callers with creation times sort those themselves).
pub fn newest_first(tags: &mut Vec<String>) {
    let (mut versions, others): (Vec<String>, Vec<String>) =
        tags.drain(..).partition(|t| semver(t).is_some());
    versions.sort_by_key(|t| std::cmp::Reverse(semver(t)));
    tags.extend(versions);
    tags.extend(others.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_first_newest_first_releases_above_pre_releases() {
        let mut t: Vec<String> = [
            "v1.2.0",
            "latest",
            "v1.10.0",
            "1.9",
            "v2.0.0-rc.1",
            "v2.0.0",
            "dev-abc",
            "v1.2.0-beta",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        newest_first(&mut t);
        assert_eq!(
            t,
            [
                "v2.0.0",
                "v2.0.0-rc.1",
                "v1.10.0",
                "1.9",
                "v1.2.0",
                "v1.2.0-beta",
                "dev-abc",
                "latest"
            ]
        );
    }
}
