"""The rules of making a video: plain functions over plain values, between cogs and storage/ulazai/media."""
