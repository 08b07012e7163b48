"""Packaging for gdml, driven by settings.ini (nbdev 2 layout).

nbdev's template setup.py imported `pkg_resources`, which recent setuptools no longer ships;
requirements are parsed with `packaging` instead.
"""
from configparser import ConfigParser
from packaging.requirements import Requirement
import setuptools

assert int(setuptools.__version__.split(".")[0]) >= 36, "please upgrade setuptools"

config = ConfigParser(delimiters=["="])
config.read("settings.ini", encoding="utf-8")
cfg = config["DEFAULT"]

expected = ("version description keywords author author_email license user min_python "
            "lib_name git_url").split()
missing = [o for o in expected if o not in cfg]
if missing: raise ValueError(f"settings.ini is missing: {missing}")

def parse_reqs(key):
    "Split a whitespace-separated requirement list, validating each with `packaging`."
    return [str(Requirement(r)) for r in cfg.get(key, "").split()]

# settings.ini names the licence; the package declares it as an SPDX expression (PEP 639), without the licence
# classifiers that setuptools deprecates
licenses = {"apache2": "Apache-2.0"}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable",
            "6 - Mature", "7 - Inactive"]
py_versions = "3.10 3.11 3.12 3.13".split()
lic = licenses.get(cfg["license"].lower(), cfg["license"])
min_python = cfg["min_python"]

setuptools.setup(
    name=cfg["lib_name"],
    license=lic,
    license_files=["LICENSE"],
    classifiers=["Development Status :: " + statuses[int(cfg["status"])],
                 "Intended Audience :: " + cfg["audience"].title(),
                 "Natural Language :: " + cfg["language"].title()]
                + ["Programming Language :: Python :: " + o
                   for o in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    # the papermill notebooks (`gdml run` executes run.ipynb) ship inside the package as gdml/notebooks/*.ipynb
    packages=setuptools.find_packages(include=["gdml", "gdml.*"]) + ["gdml.notebooks"],
    package_dir={"gdml.notebooks": "nbs/experiments"},
    package_data={"gdml.notebooks": ["*.ipynb"]},
    include_package_data=True,
    install_requires=parse_reqs("requirements"),
    extras_require={"dev": parse_reqs("dev_requirements"),
                    "slurm": ["dask-jobqueue>=0.8"]},
    dependency_links=cfg.get("dep_links", "").split(),
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": cfg.get("console_scripts", "").split(),
                  "nbdev": [f"{cfg.get('lib_path')}={cfg.get('lib_path')}._modidx:d"]},
    author=cfg["author"], author_email=cfg["author_email"],
    description=cfg["description"], keywords=cfg["keywords"],
    version=cfg["version"],
)
