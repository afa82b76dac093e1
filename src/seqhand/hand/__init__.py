"""Hand models: the asset format, safe MANO loading, the built-in hand and the layer."""

from seqhand.hand.asset import AssetError, HandAsset, load_asset
from seqhand.hand.layer import HandLayer, HandOutput

__all__ = ["AssetError", "HandAsset", "HandLayer", "HandOutput", "load_asset"]
