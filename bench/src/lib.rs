pub use tierbench;
