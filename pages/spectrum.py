import streamlit as st
st.title("spectrum")
