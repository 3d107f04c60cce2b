/// The application URL that mailed links start with, checked: `http(s)://` and a host, no
/// whitespace, query or fragment. Answers it without its trailing slashes.
pub fn app_url(raw: &str) -> Result<&str, String> {
    let trimmed = raw.trim_end_matches('/');
    let host = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or_default();
    if host.is_empty()
        || host.starts_with('/')
        || trimmed.contains(|c: char| c.is_whitespace() || c == '?' || c == '#')
    {
        return Err(format!(
            "must be an http(s) URL such as https://app.example.com, not `{raw}`"
        ));
    }
    Ok(trimmed)
}
