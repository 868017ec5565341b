//! redact: a logwasm plugin built on logwasm_sdk. Masks e-mail addresses and card numbers that
//! pass the Luhn check, anywhere in the line (JSON or not).
//!
//! Options (the transform's `options` table), all optional:
//! - `emails` (bool, default true), `email_mask` (string, default `"[email]"`)
//! - `cards` (bool, default true), `card_mask` (string, default `"[card]"`)
//!
//! A card number is 13 to 19 digits, optionally grouped by single spaces or dashes, not touching
//! another digit or letter, whose Luhn checksum is valid; other digit runs (ids, timestamps) are
//! kept. An e-mail address is `local@domain.tld`. Lines with nothing to mask pass through
//! unchanged; a line that is not UTF-8 is read with replacement characters before masking, so the
//! output is always UTF-8 (forwarding it unmasked on a UTF-8 failure would leak what it holds).

use logwasm_sdk::{export_plugin, Output, Plugin};
use serde_json::Value;

pub struct Redact {
    emails: bool,
    email_mask: String,
    cards: bool,
    card_mask: String,
}

impl Plugin for Redact {
    fn init(options: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(options).map_err(|e| format!("options are not JSON: {e}"))?;
        let table = value.as_object().ok_or("options must be a table")?;
        let mut plugin = Redact { emails: true, email_mask: "[email]".into(), cards: true, card_mask: "[card]".into() };
        for (key, value) in table {
            match key.as_str() {
                "emails" => plugin.emails = value.as_bool().ok_or("options.emails must be true or false")?,
                "cards" => plugin.cards = value.as_bool().ok_or("options.cards must be true or false")?,
                "email_mask" => plugin.email_mask = value.as_str().ok_or("options.email_mask must be a string")?.into(),
                "card_mask" => plugin.card_mask = value.as_str().ok_or("options.card_mask must be a string")?.into(),
                other => return Err(format!("unknown option \"{other}\" (known: emails, email_mask, cards, card_mask)")),
            }
        }
        Ok(plugin)
    }

    fn process(&mut self, line: &[u8]) -> Output {
        let text = String::from_utf8_lossy(line);
        let mut spans = Vec::new();
        if self.emails {
            email_spans(text.as_bytes(), &mut spans);
        }
        if self.cards {
            card_spans(text.as_bytes(), &mut spans);
        }
        if spans.is_empty() {
            return match text {
                std::borrow::Cow::Borrowed(_) => Output::Keep,
                std::borrow::Cow::Owned(fixed) => Output::Emit(fixed.into_bytes()),
            };
        }
        spans.sort_unstable();
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for (start, end, kind) in spans {
            if start < at {
                continue; // overlaps a span already masked
            }
            out.extend_from_slice(&bytes[at..start]);
            out.extend_from_slice(if kind == EMAIL { self.email_mask.as_bytes() } else { self.card_mask.as_bytes() });
            at = end;
        }
        out.extend_from_slice(&bytes[at..]);
        Output::Emit(out)
    }
}

export_plugin!(Redact);

const EMAIL: u8 = 0;
const CARD: u8 = 1;

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// `local@domain.tld` spans: the domain has a dot, and its last label is 2+ letters.
fn email_spans(bytes: &[u8], spans: &mut Vec<(usize, usize, u8)>) {
    for (at, &b) in bytes.iter().enumerate() {
        if b != b'@' {
            continue;
        }
        let mut start = at;
        while start > 0 && is_local(bytes[start - 1]) {
            start -= 1;
        }
        while start < at && bytes[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && is_domain(bytes[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(bytes[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start == at || end == at + 1 {
            continue;
        }
        let domain = &bytes[at + 1..end];
        let tld = match domain.iter().rposition(|&c| c == b'.') {
            Some(dot) if dot > 0 => &domain[dot + 1..],
            _ => continue,
        };
        if tld.len() >= 2 && tld.iter().all(|c| c.is_ascii_alphabetic()) {
            spans.push((start, end, EMAIL));
        }
    }
}

/// Runs of 13-19 digits (single spaces or dashes allowed between digits) that pass Luhn.
fn card_spans(bytes: &[u8], spans: &mut Vec<(usize, usize, u8)>) {
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() || (at > 0 && bytes[at - 1].is_ascii_alphanumeric()) {
            at += 1;
            continue;
        }
        let start = at;
        let mut digits: Vec<u8> = Vec::new();
        let mut end = at;
        let mut i = at;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                digits.push(bytes[i] - b'0');
                i += 1;
                end = i;
            } else if matches!(bytes[i], b' ' | b'-') && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        let touches_letter = end < bytes.len() && bytes[end].is_ascii_alphabetic();
        if (13..=19).contains(&digits.len()) && !touches_letter && luhn(&digits) {
            spans.push((start, end, CARD));
        }
        at = end.max(start + 1);
    }
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = d as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}
