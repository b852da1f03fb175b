"""Loupe's dashboard: navigation only. Each page lives in pages/ and calls core/."""

import streamlit as st


def run() -> None:
    st.set_page_config(page_title="Loupe", page_icon="🔎", layout="wide")
    navigation = st.navigation(
        {
            "Project": [
                st.Page("pages/projects.py", title="Projects", icon=":material/folder_open:", default=True),
                st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:"),
            ],
            "Explore": [
                st.Page("pages/data.py", title="Data", icon=":material/table_rows:"),
            ],
        }
    )
    navigation.run()


if __name__ == "__main__":
    run()
