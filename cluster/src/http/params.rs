//! Query-string parameters, validated with messages that say what is wrong.

use std::collections::BTreeMap;
use std::net::IpAddr;

use flowsight_engine::EngineConfig;
use flowsight_queries::WindowSpec;

use super::ApiError;
use super::ErrorCode;

pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses a raw query string, refusing parameters the route does not know (a typo
    /// should not silently widen a query) and repeated ones.
    pub fn parse(raw: &str, known: &[&str]) -> Result<Params, ApiError> {
        let mut map = BTreeMap::new();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::BadQuery,
                format!("cannot parse the query string: {e}"),
            )
        })?;
        for (key, value) in pairs {
            if !known.contains(&key.as_str()) {
                return Err(ApiError::bad_request(
                    ErrorCode::UnknownParameter,
                    format!(
                        "unknown parameter {key:?}; this route takes {}",
                        known.join(", ")
                    ),
                ));
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(ApiError::bad_request(
                    ErrorCode::RepeatedParameter,
                    format!("parameter {key:?} is given twice"),
                ));
            }
        }
        Ok(Params(map))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parameter's text, if given and not empty.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An optional parameter parsed with its type's `FromStr`, whose error says what is
    /// accepted.
    pub fn parsed<T: std::str::FromStr<Err = String>>(
        &self,
        key: &str,
    ) -> Result<Option<T>, String> {
        self.get(key).map(str::parse).transpose()
    }

    /// A yes/no parameter: `1`/`true` or `0`/`false`, absent meaning no.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("0") | Some("false") => Ok(false),
            Some("1") | Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(
                ErrorCode::BadFlag,
                format!("{key} must be 1, 0, true or false, got {other:?}"),
            )),
        }
    }

    pub fn ip(&self, key: &str) -> Result<Option<IpAddr>, ApiError> {
        self.get(key).map(|v| parse_ip(key, v)).transpose()
    }

    /// `limit`, defaulting to `default`, within 1..=`max`.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        self.count("limit", ErrorCode::BadLimit, default, max)
    }

    /// A whole-number parameter within 1..=`max`, defaulting to `default`; `code` names
    /// the error.
    pub fn count(
        &self,
        key: &str,
        code: ErrorCode,
        default: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(
                    code,
                    format!("{key} must be a whole number from 1 to {max}, got {v:?}"),
                )),
            },
        }
    }

    /// `window`, one of the configured windows, defaulting to the shortest.
    pub fn window(&self, config: &EngineConfig) -> Result<WindowSpec, ApiError> {
        match self.get("window") {
            None => Ok(config.windows.shortest().clone()),
            Some(name) => config.windows.get(name).cloned().ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::UnknownWindow,
                    format!(
                        "unknown window {name:?}; windows are {}",
                        config.windows.names().join(", ")
                    ),
                )
            }),
        }
    }
}

pub fn parse_ip(key: &str, value: &str) -> Result<IpAddr, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::BadIp,
            format!("{key} must be an IPv4 or IPv6 address, got {value:?}"),
        )
    })
}
