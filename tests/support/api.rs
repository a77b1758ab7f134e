//! A minimal HTTP client of the server functions: log in, call an endpoint with a form or JSON body.
#![allow(dead_code)]

use serde_json::Value;

/// A logged-in user.
pub struct Session {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// Logs `name` in with `password`.
    pub fn login(base: &str, name: &str, password: &str) -> Session {
        let resp = ureq::post(&format!("{base}/api/login"))
            .send_form(&[("name", name), ("password", password)])
            .unwrap_or_else(|e| panic!("login {name}: {e}"));
        let cookie = resp.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
        let me: Value = resp.into_json().unwrap();
        Session { base: base.into(), cookie, csrf: me["csrf"].as_str().unwrap().into() }
    }

    /// POSTs a form to `/api/{endpoint}` (the CSRF token added); returns (status, body).
    pub fn form(&self, endpoint: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let r =
            ureq::post(&format!("{}/api/{endpoint}", self.base)).set("cookie", &self.cookie).send_form(&all);
        Self::answer(r)
    }

    /// POSTs JSON to `/api/{endpoint}` (the CSRF token added to the object).
    pub fn json(&self, endpoint: &str, mut body: Value) -> (u16, String) {
        body["csrf"] = Value::String(self.csrf.clone());
        let r =
            ureq::post(&format!("{}/api/{endpoint}", self.base)).set("cookie", &self.cookie).send_json(body);
        Self::answer(r)
    }

    /// Like [`Session::form`], asserting success and parsing the JSON answer.
    pub fn ok(&self, endpoint: &str, fields: &[(&str, &str)]) -> Value {
        let (status, body) = self.form(endpoint, fields);
        assert_eq!(status, 200, "{endpoint}: {body}");
        serde_json::from_str(&body).unwrap_or(Value::Null)
    }

    /// GET with the session cookie.
    pub fn get(&self, path: &str) -> (u16, Vec<u8>) {
        match ureq::get(&format!("{}{path}", self.base)).set("cookie", &self.cookie).call() {
            Ok(r) => {
                let status = r.status();
                let mut bytes = Vec::new();
                r.into_reader().read_to_end(&mut bytes).unwrap();
                (status, bytes)
            }
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default().into_bytes()),
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, String) {
        match r {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        }
    }
}

use std::io::Read;
