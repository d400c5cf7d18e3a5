//! Value parsers shared by the commands: enum flags, grid sizes, the device.
use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{EnumValueParser, PossibleValue, TypedValueParser};
use clap::error::ErrorKind;
use clap::{Arg, ValueEnum};

/// Parses a [`ValueEnum`] flag like clap's own parser does (names, aliases, `ignore_case` when
/// the flag sets it), but words a bad value the way the commands always have: `--icons must be
/// synthetic, exemplar or both, not "pretty"` (scripts and tests look for that list).
#[derive(Clone)]
pub struct OneOf<E>(PhantomData<E>);

/// The parser of an enum flag: `#[arg(long, value_enum, value_parser = one_of::<E>())]`.
pub fn one_of<E>() -> OneOf<E> {
    OneOf(PhantomData)
}

impl<E: ValueEnum + Clone + Send + Sync + 'static> TypedValueParser for OneOf<E> {
    type Value = E;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<E, clap::Error> {
        EnumValueParser::<E>::new()
            .parse_ref(cmd, arg, value)
            .map_err(|_| {
                let flag = arg
                    .and_then(Arg::get_long)
                    .map_or_else(|| "the value".to_string(), |long| format!("--{long}"));
                let message = format!(
                    "{flag} must be {}, not {:?}\n",
                    spoken_list(&visible_names::<E>()),
                    value.to_string_lossy()
                );
                clap::Error::raw(ErrorKind::InvalidValue, message).with_cmd(cmd)
            })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            E::value_variants()
                .iter()
                .filter_map(ValueEnum::to_possible_value),
        ))
    }
}

/// The name a value of an enum flag has on the command line.
pub fn name_of<E: ValueEnum>(value: &E) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string())
}

/// The names of `E`'s values that help shows (aliases left out).
fn visible_names<E: ValueEnum>() -> Vec<String> {
    E::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect()
}

/// `a`, `a or b`, `a, b or c`.
fn spoken_list(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// One grid size of `--grids` or `--icon-levels`: a positive integer (spaces around it allowed,
/// as in `--grids "20, 40"`).
pub fn grid_size(s: &str) -> Result<usize, String> {
    s.trim()
        .parse::<usize>()
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| format!("{s:?} is not a grid size (a positive integer)"))
}

/// `--device`: checked here (an unknown or absent device stops the command before any work) and
/// kept as written, since it is handed on through `ATLAS_DEVICE`.
pub fn device(s: &str) -> anyhow::Result<String> {
    atlas::model::parse_device(s)?;
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_speech() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(spoken_list(&names(&["umap"])), "umap");
        assert_eq!(spoken_list(&names(&["mass", "mean"])), "mass or mean");
        assert_eq!(
            spoken_list(&names(&["synthetic", "exemplar", "both"])),
            "synthetic, exemplar or both"
        );
    }

    #[test]
    fn grid_sizes_are_positive_integers() {
        assert_eq!(grid_size(" 40"), Ok(40));
        assert!(grid_size("0").unwrap_err().contains("not a grid size"));
        assert!(grid_size("x").is_err());
    }
}
