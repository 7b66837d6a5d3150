//! Conversions between wire types and Rust types that every service needs.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use caseway_api::google::r#type::Date;

pub fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

pub fn date(date: NaiveDate) -> Date {
    Date {
        year: date.year(),
        month: date.month() as i32,
        day: date.day() as i32,
    }
}
