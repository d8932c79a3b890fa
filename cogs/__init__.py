"""Everything that speaks Discord: one cog per user-facing area, plus shared Discord helpers."""
