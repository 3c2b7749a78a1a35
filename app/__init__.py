"""OFA Explorer core: the Once-for-All MobileNetV3 supernet, its subnets and their predicted costs.

    import app
    net = app.load_supernet()
    cfg = app.SubnetConfig.from_dict({"ks": [...], "e": [...], "d": [...], "r": 224})
    sub = net.extract(cfg, calibrate=False)
    app.predict(cfg, hardware="note10")     # accuracy, latency, energy -- each with its source
    app.hardware_targets()                   # every target and its kind (published / measured / model)
    app.classify(sub, image, net.card)       # top-5, and whether the image is one of the classes at all
"""

from app.space import SubnetConfig
from app.card import SupernetCard
from app.supernet import OFASupernet
from app.weights import SupernetLoadError, load_supernet, save_supernet
from app.costs import count_macs, count_params
from app.predictors import hardware_targets, predict
from app.classify import Classification, classify

__all__ = [
    "SubnetConfig",
    "OFASupernet",
    "SupernetCard",
    "SupernetLoadError",
    "load_supernet",
    "save_supernet",
    "count_macs",
    "count_params",
    "predict",
    "hardware_targets",
    "classify",
    "Classification",
]
