//! Request signatures: W&B's `X-Wandb-Signature` (base64 HMAC-SHA256 of the body under the
//! signing secret) and Standard Webhooks' `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
//! `id.timestamp.body`, where a `whsec_` secret is base64 key material).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    B64.encode(mac.finalize().into_bytes())
}

/// `X-Wandb-Signature`: the secret's bytes are the key, as in W&B's `openssl -hmac "$SECRET"`.
pub fn wandb_signature(secret: &str, body: &[u8]) -> String {
    hmac(secret.as_bytes(), &[body])
}

/// `webhook-signature` per the Standard Webhooks spec.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => B64
            .decode(b64)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    };
    let ts = timestamp.to_string();
    format!(
        "v1,{}",
        hmac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_rust_test_vector() {
        // From the Standard Webhooks reference library (libraries/rust/src/lib.rs, test_sign).
        let sig = standard_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn svix_docs_vector() {
        let sig = standard_signature(
            "whsec_plJ3nmyCDGBKInavdOK15jsl",
            "msg_loFOjxBNrRLzqYUf",
            1731705121,
            br#"{"event_type":"ping","data":{"success":true}}"#,
        );
        assert_eq!(sig, "v1,rAvfW3dJ/X/qxhsaXPOyyCGmRKsaKWcsNccKXlIktD0=");
    }

    #[test]
    fn wandb_signature_is_base64_hmac_of_the_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = wandb_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            B64.decode(&sig).unwrap(),
            hex::decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
                .unwrap()
        );
    }
}
